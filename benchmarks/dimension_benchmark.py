"""The psi-dimension benchmark: samples to the target against the number of psi components.

    python benchmarks/dimension_benchmark.py --mode=targets
    python benchmarks/dimension_benchmark.py --mode=run --root_dir=/tmp/dimension --seeds=1,2,3
    python benchmarks/dimension_benchmark.py --mode=summarize --root_dir=/tmp/dimension

`compare_dimension.gin` (two Gaussian classes in DIMENSION inputs, psi = the per-input
separation) at every dimension of `--dimensions`, all five methods, scored by the referee.

- `targets` measures, per dimension, the referee's validation accuracy at the default psi
  and at the real data's hidden separation (the mean over `NUM_TARGET_SEEDS` referee
  trainings, with seeds no run uses) and sets the target 90% of the way from the first to
  the second; writes `targets.json` into `--output_dir`.
- `run` runs `run_comparison` at each dimension and seed in this process, one after the
  other, into `<root_dir>/dimension_<D>/seed_<s>`; a folder that already holds a
  `comparison.json` is kept, so an interrupted run resumes and seeds can be split over
  processes (each with its own `--seeds`) and summarised together.
- `summarize` merges the seed folders of each dimension (`merge_comparisons`) and writes
  into `--output_dir`: `summary.json` as `{"<D>": {method: median samples to target}}`
  (a method whose median run never reaches the target gets the median samples it spent:
  a lower bound, listed under `"_lower_bounds"`), `per_seed.json` and
  `samples_to_target.png`.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gin
import numpy as np
from absl import app, flags, logging

from autosimulate_tf import configs
from autosimulate_tf import results_schema as schema
from autosimulate_tf.comparison import report
from autosimulate_tf.comparison.compare import merge_comparisons, run_comparison
from autosimulate_tf.comparison.referee import REFEREE_SCOPE
from autosimulate_tf.data.gaussian_classes import hidden_separation
from autosimulate_tf.problem import Problem
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator

GIN_FILE = "compare_dimension.gin"
OUTPUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "dimension")
METHODS = ("autosimulate", "bayesian_optimization", "learning_to_simulate", "random_search", "default")
# The target is this fraction of the way from the default's referee score to the hidden psi's.
GAP_FRACTION = 0.9
NUM_TARGET_SEEDS = 5
_TARGET_SEED_OFFSET = 10_000  # referee seeds for the targets, far from every run seed

# Per dimension: (MAX_SAMPLES, REFEREE_EVERY_SAMPLES, EVALUATION_SAMPLES), gin macros of
# compare_dimension.gin (tuning.txt records how they were chosen). The budget is what a method
# that never reaches the target gets as its lower bound; the referee rescores a point only
# REFEREE_EVERY_SAMPLES samples after the last rescored one; the search baselines render
# EVALUATION_SAMPLES per objective evaluation.
PER_DIMENSION = {2: (20_000, 0, 100), 8: (50_000, 100, 100), 32: (50_000, 250, 100), 128: (150_000, 1000, 1000)}


def dimension_macros(dimension: int) -> dict:
    """The gin macros of one dimension.

    Steps on psi and Learning to Simulate's exploration noise shrink as 1/sqrt(D) from their
    values at D = 2: psi keeps the same norm at every dimension, so each component is
    1/sqrt(D) as large.
    """
    max_samples, referee_every_samples, evaluation_samples = PER_DIMENSION[dimension]
    shrink = (2 / dimension) ** 0.5
    return {
        "MAX_SAMPLES": max_samples,
        "REFEREE_EVERY_SAMPLES": referee_every_samples,
        "EVALUATION_SAMPLES": evaluation_samples,
        "OUTER_LEARNING_RATE": round(0.24 * shrink, 4),
        "LTS_LEARNING_RATE": round(0.1 * shrink, 4),
        "LTS_INITIAL_STD": round(0.5 * shrink, 4),
    }


flags.DEFINE_enum("mode", "run", ["targets", "run", "summarize"], "What to do (module docstring).")
flags.DEFINE_string("root_dir", "/tmp/dimension_benchmark", "Comparison folders, one per dimension and seed.")
flags.DEFINE_string("output_dir", OUTPUT_DIR, "Where targets.json, summary.json and the plot go.")
flags.DEFINE_list("dimensions", [str(d) for d in PER_DIMENSION], "Dimensions (psi components).")
flags.DEFINE_list("seeds", ["1", "2", "3"], "Run seeds (0 was used for tuning).")
flags.DEFINE_list("methods", list(METHODS), "Methods to run.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings at every dimension (after the per-dimension ones).")
FLAGS = flags.FLAGS


def dimension_bindings(dimension: int, targets: dict | None) -> list[str]:
    """The gin bindings of one dimension: its macros, its target (when known) and `--gin_bindings`."""
    bindings = [f"DIMENSION = {dimension}"]
    bindings += [f"{name} = {value}" for name, value in dimension_macros(dimension).items()]
    if targets is not None:
        bindings.append(f"TARGET_ACCURACY = {targets[str(dimension)]['target_accuracy']}")
    return bindings + list(FLAGS.gin_bindings)


def referee_accuracy(problem: Problem, separation, seeds) -> float:
    """Mean referee validation accuracy of `problem` with psi set to `separation`."""
    with gin.config_scope(REFEREE_SCOPE):
        evaluator = ScratchTrainingEvaluator(problem)
    accuracies = []
    with problem.simulator.temporary_psi(constrained={"separation": separation}):
        for seed in seeds:
            accuracies.append(evaluator.evaluate(seed)[schema.VAL_ACCURACY])
    return float(np.mean(accuracies))


def measure_targets(dimensions: list[int]) -> dict:
    """`{"<D>": {default, hidden, target_accuracy}}`: the target 90% of the way from default to hidden."""
    seeds = [_TARGET_SEED_OFFSET + index for index in range(NUM_TARGET_SEEDS)]
    targets = {}
    for dimension in dimensions:
        gin.clear_config()
        configs.parse_gin([GIN_FILE], dimension_bindings(dimension, None))
        problem = Problem()
        default = referee_accuracy(problem, problem.simulator.constrained_parameters()["separation"], seeds)
        hidden = referee_accuracy(problem, hidden_separation(dimension), seeds)
        target = round(default + GAP_FRACTION * (hidden - default), 3)
        targets[str(dimension)] = {"default": default, "hidden": hidden, "target_accuracy": target}
        print(f"dimension {dimension}: default {default:.3f}, hidden {hidden:.3f}, target {target}", flush=True)
    return {"gap_fraction": GAP_FRACTION, "referee_seeds": seeds, "dimensions": targets}


def seed_folder(root_dir: str, dimension: int, seed: int) -> str:
    """The comparison folder of one dimension and seed."""
    return os.path.join(root_dir, f"dimension_{dimension}", f"seed_{seed}")


def run_all(root_dir: str, dimensions: list[int], seeds: list[int], methods: list[str], targets: dict) -> None:
    """One comparison per dimension and seed, skipping folders that are already finished."""
    for dimension in dimensions:
        for seed in seeds:
            folder = seed_folder(root_dir, dimension, seed)
            if os.path.exists(os.path.join(folder, "comparison.json")):
                print(f"dimension {dimension} seed {seed}: kept {folder}", flush=True)
                continue
            gin.clear_config()
            bindings = dimension_bindings(dimension, targets)
            bindings += [f"run_comparison.seeds = ({seed},)", f"run_comparison.methods = {tuple(methods)!r}"]
            configs.parse_gin([GIN_FILE], bindings)
            print(f"---- dimension {dimension} seed {seed} ----", flush=True)
            run_comparison(root_dir=folder)


def merged_comparison(root_dir: str, dimension: int, seeds: list[int]) -> dict:
    """The comparison of one dimension over `seeds`: merged from the seed folders (or the one folder)."""
    folders = [seed_folder(root_dir, dimension, seed) for seed in seeds]
    if len(folders) == 1:
        with open(os.path.join(folders[0], "comparison.json")) as f:
            return json.load(f)
    return merge_comparisons(os.path.join(root_dir, f"dimension_{dimension}", "merged"), folders)


def samples_to_target(summary: dict) -> tuple[float, bool]:
    """`(median samples to target, is a lower bound)` of one method's summary in comparison.json."""
    key = report.to_target(schema.SIMULATED_SAMPLES)
    if summary[key] is not None:
        return float(summary[key]), False
    return float(summary[f"{key}_lower_bound"]), True


def summarize(root_dir: str, dimensions: list[int], seeds: list[int]) -> tuple[dict, dict]:
    """`(summary.json, per_seed.json)` contents from the finished seed folders."""
    summary, lower_bounds, per_seed = {}, {}, {}
    for dimension in dimensions:
        comparison = merged_comparison(root_dir, dimension, seeds)
        key = str(dimension)
        summary[key], lower_bounds[key], per_seed[key] = {}, [], {"target_accuracy": comparison["target_accuracy"]}
        for method, method_summary in comparison["methods"].items():
            samples, is_bound = samples_to_target(method_summary)
            summary[key][method] = samples
            if is_bound:
                lower_bounds[key].append(method)
            per_seed[key][method] = [
                {
                    "seed": seed,
                    "samples_to_target": run[report.to_target(schema.SIMULATED_SAMPLES)],
                    "samples_spent": run[f"total_{schema.SIMULATED_SAMPLES}"],
                    "final_val_accuracy": run["final_val_accuracy"],
                }
                for seed, run in zip(comparison["seeds"], method_summary["seeds"], strict=True)
            ]
    summary["_lower_bounds"] = lower_bounds
    summary["_seeds"] = seeds
    return summary, per_seed


def plot_summary(summary: dict, path: str) -> None:
    """Log-y samples to target against dimension, one line per tuning method.

    A lower bound (the median run never reached the target) is an open triangle reached by a
    dashed segment; methods sharing a bound (the budget) are spread a little along x so that
    each stays visible. The untuned default, which never reaches the target, is left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dimensions = sorted(int(key) for key in summary if not key.startswith("_"))
    figure, axes = plt.subplots(figsize=(7, 4.5))
    methods = [m for m in METHODS if m != "default" and m in summary[str(dimensions[0])]]
    for index, method in enumerate(methods):
        color, spread = f"C{index}", 1.0 + 0.05 * (index - (len(methods) - 1) / 2)
        bounds = [method in summary["_lower_bounds"][str(d)] for d in dimensions]
        xs = [d * spread if bound else d for d, bound in zip(dimensions, bounds, strict=True)]
        ys = [summary[str(d)][method] for d in dimensions]
        for i in range(len(xs) - 1):
            style = "--" if bounds[i] or bounds[i + 1] else "-"
            axes.plot(xs[i : i + 2], ys[i : i + 2], style, color=color)
        for x, y, bound in zip(xs, ys, bounds, strict=True):
            axes.plot(x, y, "^" if bound else "o", color=color, markerfacecolor="white" if bound else color, ms=8)
        axes.plot([], [], "-o", color=color, label=method)
    axes.plot([], [], "^", color="gray", markerfacecolor="white", label="lower bound: median run never reached it")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(dimensions, [str(d) for d in dimensions])
    axes.set_xlabel("psi components")
    axes.set_ylabel("simulated samples to target (median over seeds)")
    axes.set_title(
        f"Two Gaussian classes, referee scoring, seeds {summary['_seeds']} (the default never reaches the target)",
        fontsize=9,
    )
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_json(path: str, contents: dict) -> None:
    """Writes `contents` as indented JSON, creating the folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(contents, f, indent=2)
        f.write("\n")
    print(f"Wrote {path}")


def main(argv) -> None:
    """Measures the targets, runs the comparisons or summarises them (`--mode`)."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    dimensions = [int(d) for d in FLAGS.dimensions]
    unknown = sorted(set(dimensions) - set(PER_DIMENSION))
    if unknown:
        raise app.UsageError(f"--dimensions has {unknown}; this benchmark knows {sorted(PER_DIMENSION)}.")
    seeds = [int(s) for s in FLAGS.seeds]
    targets_path = os.path.join(FLAGS.output_dir, "targets.json")
    if FLAGS.mode == "targets":
        write_json(targets_path, measure_targets(dimensions))
    elif FLAGS.mode == "run":
        with open(targets_path) as f:
            targets = json.load(f)["dimensions"]
        run_all(FLAGS.root_dir, dimensions, seeds, list(FLAGS.methods), targets)
    else:
        summary, per_seed = summarize(FLAGS.root_dir, dimensions, seeds)
        write_json(os.path.join(FLAGS.output_dir, "summary.json"), summary)
        write_json(os.path.join(FLAGS.output_dir, "per_seed.json"), per_seed)
        plot_summary(summary, os.path.join(FLAGS.output_dir, "samples_to_target.png"))
        print(f"Wrote {os.path.join(FLAGS.output_dir, 'samples_to_target.png')}")


if __name__ == "__main__":
    app.run(main)
