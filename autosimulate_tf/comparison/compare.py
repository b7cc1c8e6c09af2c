"""The comparison entry point: methods x seeds, comparison.json, plots, table."""

import json
import os

import gin

from autosimulate_tf.comparison import report
from autosimulate_tf.comparison.runners import AUTOSIMULATE, DEFAULT_METHODS, METHODS, run_method


@gin.configurable
def run_comparison(
    root_dir: str,
    methods=DEFAULT_METHODS,
    seeds=(0, 1, 2),
    target_accuracy: float = gin.REQUIRED,
) -> dict:
    """Runs every method for every seed in this process, one after another.

    Args:
      root_dir: output folder for `comparison.json`, `runs.json` (full curves) and PNG plots.
      methods: subset of `("autosimulate", "learning_to_simulate", "random_search", "default",
        "bayesian_optimization")`; the last needs optuna (`pip install -e '.[bo]'`).
      seeds: run seeds.
      target_accuracy: validation accuracy that counts as reaching the target.

    Returns:
      The dict written to `comparison.json`.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"run_comparison.methods has unknown entries {unknown}; known: {METHODS}.")
    if not seeds:
        raise ValueError("run_comparison.seeds must name at least one seed.")
    if not 0 < target_accuracy <= 1:
        raise ValueError(f"run_comparison.target_accuracy={target_accuracy} must be in (0, 1].")
    os.makedirs(root_dir, exist_ok=True)  # Before the runs: an unwritable folder fails now, not after them.
    runs = {method: [] for method in methods}
    for method in methods:
        for seed in seeds:
            run = run_method(method, seed, target_accuracy)
            runs[method].append(run)
            reached = report.first_reaching(run["curve"], target_accuracy)
            print(
                f"{method:<22} seed {seed}: final val {run['curve'][-1]['val_accuracy']:.3f}, "
                f"{'target at ' + str(reached['samples']) + ' samples' if reached else 'target not reached'}, "
                f"{run['curve'][-1]['samples']} samples, {run['curve'][-1]['time_s']:.1f}s",
                flush=True,
            )
    return write_comparison(root_dir, runs, list(seeds), target_accuracy, gin.operative_config_str())


def write_comparison(root_dir: str, runs: dict, seeds: list, target_accuracy: float, operative_config: str) -> dict:
    """Summarises finished runs: writes comparison.json, runs.json, table.txt and plots; prints the table.

    Args:
      root_dir: output folder.
      runs: `{method: [run per seed]}`, each run as `run_method` returns it.
      seeds: the seeds, in the order of every method's runs.
      target_accuracy: validation accuracy that counts as reaching the target.
      operative_config: recorded in comparison.json.

    Returns:
      The dict written to `comparison.json` (plus the plots' paths under "plots").
    """
    os.makedirs(root_dir, exist_ok=True)
    methods = list(runs)
    summaries = {method: report.summarize_method(method_runs, target_accuracy) for method, method_runs in runs.items()}
    reference = AUTOSIMULATE if AUTOSIMULATE in summaries else methods[0]
    ratios = report.ratios_to_reference(summaries, reference)
    # "Beats random search at equal objective evaluations": every method's accuracy after as many
    # objective evaluations as the reference needed to reach the target.
    reference_evaluations = summaries[reference]["objective_evals_to_target"]
    at_equal_evaluations = None
    if reference_evaluations is not None:
        at_equal_evaluations = {
            "objective_evaluations": reference_evaluations,
            "val_accuracy": {m: report.accuracy_at_evaluations(r, reference_evaluations) for m, r in runs.items()},
        }
    comparison = {
        "target_accuracy": target_accuracy,
        # 'method' (each method's own score) or 'referee' (one fresh-model score for all; referee.py).
        "scoring": runs[methods[0]][0]["scoring"],
        "seeds": seeds,
        "reference": reference,
        "methods": summaries,
        "ratios_to_reference": ratios,
        "accuracy_at_reference_evaluations": at_equal_evaluations,
        "samples_to_match_final": report.samples_to_match_final(runs, reference),
        "operative_config": operative_config,
    }
    with open(os.path.join(root_dir, "comparison.json"), "w") as f:
        json.dump(comparison, f, indent=2)
    with open(os.path.join(root_dir, "runs.json"), "w") as f:
        json.dump({"target_accuracy": target_accuracy, "seeds": seeds, "runs": runs}, f)
    comparison["plots"] = report.write_plots(root_dir, runs, target_accuracy, comparison["scoring"])
    table = report.format_table(summaries, ratios, target_accuracy)
    with open(os.path.join(root_dir, "table.txt"), "w") as f:
        f.write(table + "\n")
    print(table)
    if at_equal_evaluations is not None:
        print(f"Validation accuracy after {reference_evaluations} objective evaluations (median over seeds):")
        for method, accuracy in at_equal_evaluations["val_accuracy"].items():
            print(f"  {method:<22}{'n/a' if accuracy is None else f'{accuracy:.3f}'}")
    for method, match in comparison["samples_to_match_final"].items():
        print(
            f"To reach {method}'s final val accuracy {match['target_val_accuracy']:.3f}: {reference} "
            f"{match['reference_samples']} samples, {method} {match['method_samples']} samples"
            + (f" ({match['ratio']:.3g}x)" if match["ratio"] else "")
        )
    return comparison


def _settings_besides_seeds(operative_config: str) -> list[str]:
    """The gin binding lines of an operative config, without comments and `run_comparison.seeds`."""
    lines = [line.strip() for line in operative_config.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "run_comparison.seeds"))]


def merge_comparisons(root_dir: str, source_dirs: list[str]) -> dict:
    """Merges comparisons of the same config run on disjoint seeds (e.g. one process per seed).

    Each source folder must hold the `runs.json` and `comparison.json` of a `run_comparison`
    with the same methods, target, scoring and gin settings (all but `run_comparison.seeds`);
    their seeds must not overlap. Writes the merged outputs to `root_dir`, as one run over
    all the seeds would have.
    """
    if len(source_dirs) < 2:
        raise ValueError(f"Merging needs at least two comparison folders, got {source_dirs}.")
    merged_runs, seeds, first = None, [], None
    for source in source_dirs:
        try:
            with open(os.path.join(source, "runs.json")) as f:
                runs_file = json.load(f)
            with open(os.path.join(source, "comparison.json")) as f:
                comparison = json.load(f)
        except FileNotFoundError as error:
            raise ValueError(f"{source} is not a finished comparison folder: {error}") from error
        identity = (list(runs_file["runs"]), runs_file["target_accuracy"], comparison["scoring"])
        settings = _settings_besides_seeds(comparison["operative_config"])
        if first is None:
            first, merged_runs, operative_config = (
                identity,
                {m: [] for m in identity[0]},
                comparison["operative_config"],
            )
            first_settings = settings
        elif identity != first:
            raise ValueError(
                f"{source} ran (methods, target, scoring) = {identity}, but {source_dirs[0]} ran {first}: "
                "only comparisons of the same configuration can be merged."
            )
        elif settings != first_settings:
            differing = sorted(set(settings) ^ set(first_settings))
            raise ValueError(
                f"{source} and {source_dirs[0]} ran with different gin settings (besides the seeds): "
                f"{differing[:6]}; only comparisons of the same configuration can be merged."
            )
        overlap = set(seeds) & set(runs_file["seeds"])
        if overlap:
            raise ValueError(f"{source} repeats seeds {sorted(overlap)} already merged from an earlier folder.")
        seeds += runs_file["seeds"]
        for method, method_runs in runs_file["runs"].items():
            merged_runs[method] += method_runs
    note = f"# Merged by merge_comparisons from: {', '.join(source_dirs)}\n# Operative config of the first:\n"
    return write_comparison(root_dir, merged_runs, seeds, first[1], note + operative_config)
