"""The comparison entry point: methods x seeds, comparison.json, plots, table.

The target is bound as `run_comparison.target_accuracy` for a classification problem
(reached when `val_accuracy >= target`) or `run_comparison.target_loss` for a regression
one (reached when `val_loss <= target`); the problem's kind decides, and everything that
ranks methods follows that score (`baselines/score.py`).
"""

import json
import os

import gin

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import Target
from autosimulate_tf.comparison import plots, report
from autosimulate_tf.comparison.runners import AUTOSIMULATE, DEFAULT_METHODS, METHODS, run_method
from autosimulate_tf.errors import check
from autosimulate_tf.problem import Problem


def bound_target(problem: Problem) -> Target:
    """The `Target` that the gin bindings of `run_comparison` name, checked against `problem`.

    Raises:
      ConfigError: as `Target.from_bindings`.
    """

    def bound(name: str):
        try:
            return gin.query_parameter(f"run_comparison.{name}")
        except ValueError:  # not bound
            return None

    return Target.from_bindings(problem, bound("target_accuracy"), bound("target_loss"))


@gin.configurable
def run_comparison(
    root_dir: str,
    methods=DEFAULT_METHODS,
    seeds=(0, 1, 2),
    target_accuracy: float | None = None,
    target_loss: float | None = None,
) -> dict:
    """Runs every method for every seed in this process, one after another.

    Every setting is checked first (the target against the problem's kind, each method's
    settings against the problem): a bad one raises before any method runs.

    Args:
      root_dir: output folder for `comparison.json`, `runs.json` (full curves) and PNG plots.
      methods: subset of `("autosimulate", "learning_to_simulate", "random_search", "default",
        "bayesian_optimization")`; the last needs optuna (`pip install -e '.[bo]'`).
      seeds: run seeds.
      target_accuracy: for a classification problem: the validation accuracy that counts
        as reaching the target.
      target_loss: for a regression problem: the validation loss that counts as reaching
        the target. Bind exactly one of the two.

    Returns:
      The dict written to `comparison.json`.

    Raises:
      ConfigError: naming the bad setting.
    """
    unknown = [m for m in methods if m not in METHODS]
    check(not unknown, f"run_comparison.methods has unknown entries {unknown}; known: {METHODS}.")
    check(bool(methods), "run_comparison.methods must name at least one method.")
    check(bool(seeds), "run_comparison.seeds must name at least one seed.")
    problem = Problem()
    target = Target.from_bindings(problem, target_accuracy, target_loss)
    for method in methods:
        run_method(method, seeds[0], target, problem=problem, check_only=True)
    os.makedirs(root_dir, exist_ok=True)  # Before the runs: an unwritable folder fails now, not after them.
    runs = {method: [] for method in methods}
    for method in methods:
        for seed in seeds:
            run = run_method(method, seed, target)
            runs[method].append(run)
            print(_run_line(method, seed, run, target), flush=True)
    return write_comparison(root_dir, runs, list(seeds), target, gin.operative_config_str())


def _run_line(method: str, seed: int, run: dict, target: Target) -> str:
    last, reached = run["curve"][-1], report.first_reaching(run["curve"], target)
    reached_text = f"target at {reached[schema.SIMULATED_SAMPLES]} samples" if reached else "target not reached"
    return (
        f"{method:<22} seed {seed}: final {target.score.label} {report.show_score(last[target.score.key], target.score)}, "
        f"{reached_text}, {last[schema.SIMULATED_SAMPLES]} samples, {last[schema.WALL_CLOCK_S]:.1f}s"
    )


def write_comparison(root_dir: str, runs: dict, seeds: list, target: Target, operative_config: str) -> dict:
    """Summarises finished runs: writes comparison.json, runs.json, table.txt and plots; prints the table.

    Args:
      root_dir: output folder.
      runs: `{method: [run per seed]}`, each run as `run_method` returns it.
      seeds: the seeds, in the order of every method's runs.
      target: the validation score that counts as reaching the target.
      operative_config: recorded in comparison.json.

    Returns:
      The dict written to `comparison.json` (plus the plots' paths under "plots").
    """
    os.makedirs(root_dir, exist_ok=True)
    comparison = summarize_comparison(runs, seeds, target, operative_config)
    with open(os.path.join(root_dir, "comparison.json"), "w") as f:
        json.dump(comparison, f, indent=2)
    with open(os.path.join(root_dir, "runs.json"), "w") as f:
        json.dump({**target.as_json(), "seeds": seeds, "runs": runs}, f)
    comparison["plots"] = plots.write_plots(root_dir, runs, target, comparison["scoring"])
    table = report.format_table(comparison["methods"], comparison["ratios_to_reference"], target)
    with open(os.path.join(root_dir, "table.txt"), "w") as f:
        f.write(table + "\n")
    print(table)
    _print_matches(comparison, target)
    return comparison


def summarize_comparison(runs: dict, seeds: list, target: Target, operative_config: str) -> dict:
    """The contents of comparison.json: summaries, ratios and matches against the reference method."""
    methods, score = list(runs), target.score
    summaries = {method: report.summarize_method(method_runs, target) for method, method_runs in runs.items()}
    reference = AUTOSIMULATE if AUTOSIMULATE in summaries else methods[0]
    # "Beats random search at equal objective evaluations": every method's score after as many
    # objective evaluations as the reference needed to reach the target.
    reference_evaluations = summaries[reference][report.to_target(schema.OBJECTIVE_EVALUATIONS)]
    at_equal_evaluations = None
    if reference_evaluations is not None:
        at_equal_evaluations = {
            schema.OBJECTIVE_EVALUATIONS: reference_evaluations,
            score.key: {m: report.score_at_evaluations(r, reference_evaluations, score) for m, r in runs.items()},
        }
    return {
        **target.as_json(),
        "score": score.key,
        # 'method' (each method's own score) or 'referee' (one fresh-model score for all; referee.py).
        "scoring": runs[methods[0]][0]["scoring"],
        "seeds": seeds,
        "reference": reference,
        "methods": summaries,
        "ratios_to_reference": report.ratios_to_reference(summaries, reference),
        "score_at_reference_evaluations": at_equal_evaluations,
        "samples_to_match_final": report.samples_to_match_final(runs, reference, score),
        "operative_config": operative_config,
    }


def _print_matches(comparison: dict, target: Target) -> None:
    score, reference = target.score, comparison["reference"]
    at_equal_evaluations = comparison["score_at_reference_evaluations"]
    if at_equal_evaluations is not None:
        evaluations = at_equal_evaluations[schema.OBJECTIVE_EVALUATIONS]
        print(f"{score.label.capitalize()} after {evaluations} objective evaluations (median over seeds):")
        for method, value in at_equal_evaluations[score.key].items():
            print(f"  {method:<22}{report.show_score(value, score)}")
    for method, match in comparison["samples_to_match_final"].items():
        print(
            f"To reach {method}'s final {score.label} {report.show_score(match[f'target_{score.key}'], score)}: {reference} "
            f"{match[f'reference_{schema.SIMULATED_SAMPLES}']} samples, "
            f"{method} {match[f'method_{schema.SIMULATED_SAMPLES}']} samples"
            + (f" ({match['ratio']:.3g}x)" if match["ratio"] else "")
        )


def _settings_besides_seeds(operative_config: str) -> list[str]:
    """The gin binding lines of an operative config, without comments and `run_comparison.seeds`."""
    lines = [line.strip() for line in operative_config.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "run_comparison.seeds"))]


def _read_folder(source: str) -> tuple[dict, dict]:
    """`(runs.json, comparison.json)` of a finished comparison folder."""
    try:
        with open(os.path.join(source, "runs.json")) as f:
            runs_file = json.load(f)
        with open(os.path.join(source, "comparison.json")) as f:
            comparison = json.load(f)
    except FileNotFoundError as error:
        raise ValueError(f"{source} is not a finished comparison folder: {error}") from error
    return runs_file, comparison


def merge_comparisons(root_dir: str, source_dirs: list[str]) -> dict:
    """Merges comparisons of the same config run on disjoint seeds (e.g. one process per seed).

    Each source folder must hold the `runs.json` and `comparison.json` of a `run_comparison`
    with the same methods, target, scoring and gin settings (all but `run_comparison.seeds`);
    their seeds must not overlap. Writes the merged outputs to `root_dir`, as one run over
    all the seeds would have.
    """
    if len(source_dirs) < 2:
        raise ValueError(f"Merging needs at least two comparison folders, got {source_dirs}.")
    merged_runs, seeds, first, first_settings = None, [], None, None
    for source in source_dirs:
        runs_file, comparison = _read_folder(source)
        identity = (list(runs_file["runs"]), Target.from_json(runs_file), comparison["scoring"])
        settings = _settings_besides_seeds(comparison["operative_config"])
        if first is None:
            first, first_settings, operative_config = identity, settings, comparison["operative_config"]
            merged_runs = {m: [] for m in identity[0]}
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
