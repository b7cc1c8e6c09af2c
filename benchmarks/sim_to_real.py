"""Sim-to-real benchmarks: fresh final models trained on renders only, scored on the real test data.

    python benchmarks/sim_to_real.py --benchmark=scenes --root_dir=/tmp/scenes_benchmark --seeds=0,1,2
    python benchmarks/sim_to_real.py --benchmark=digits --root_dir=/tmp/digits_benchmark --seeds=0,1,2
    python benchmarks/sim_to_real.py --benchmark=mnist --root_dir=/tmp/mnist_benchmark --seeds=0,1,2

For every seed it runs each variant of the benchmark (`VARIANTS`: the untuned default, the
AutoSimulate config and, for the scenes, the oracle psi) through `train_autosimulate` in this
process, one after the other, and writes `<root_dir>/summary.json`:

    {"default": median, "autosimulate": median, ("oracle": median,)
     "target_data_reference": median of the model trained on the real validation data,
     "gap_closed": (autosimulate - default) / (oracle - default)  (scenes only),
     "runs": {variant: [per-seed rows]}}

Medians are over the seeds given; to split a long benchmark, run disjoint `--seeds` into
separate root folders and merge them with `--merge=<root_dir>,<root_dir>,...`, which only
reads the `rows.jsonl` files. A run folder that already holds a finished run is re-read, not
trained again (`train_autosimulate` resumes from its checkpoint; the hand-off re-reads
`hand_off.json`).
"""

import json
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gin
from absl import app, flags, logging

from autosimulate_tf import configs
from autosimulate_tf.train import train_autosimulate

# benchmark -> variant -> (gin file, extra bindings)
VARIANTS = {
    "digits": {"default": ("digits_default.gin", []), "autosimulate": ("digits_autosimulate.gin", [])},
    "mnist": {"default": ("mnist_default.gin", []), "autosimulate": ("mnist_autosimulate.gin", [])},
    "scenes": {
        "default": ("scenes_default.gin", []),
        "oracle": ("scenes_default.gin", ["SceneSimulator.start = 'oracle'"]),
        "autosimulate": ("scenes_autosimulate.gin", []),
    },
}

flags.DEFINE_enum("benchmark", "scenes", list(VARIANTS), "Which benchmark.")
flags.DEFINE_string("root_dir", "/tmp/sim_to_real", "Output folder (one sub-folder per variant and seed).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (the gin macro SEED).")
flags.DEFINE_list("variants", [], "Which variants to run (default: all of the benchmark's).")
flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings for every variant.")
flags.DEFINE_multi_string("autosimulate_gin_bindings", [], "Extra bindings for the autosimulate variant only.")
flags.DEFINE_list("merge", [], "Only merge the rows.jsonl of these root folders into --root_dir/summary.json.")
FLAGS = flags.FLAGS


def run_row(benchmark: str, variant: str, seed: int, root_dir: str) -> dict:
    """Runs (or re-reads) one variant at one seed and returns its row."""
    gin_file, bindings = VARIANTS[benchmark][variant]
    extra = FLAGS.autosimulate_gin_bindings if variant == "autosimulate" else []
    gin.clear_config()
    configs.parse_gin([gin_file], [f"SEED = {seed}", *bindings, *FLAGS.gin_bindings, *extra])
    results = train_autosimulate(root_dir=os.path.join(root_dir, f"{variant}-seed{seed}"))
    return {
        "variant": variant,
        "seed": seed,
        "final_model_test_accuracy": results["final_model"]["test_accuracy"],
        "real_data_reference_test_accuracy": (results.get("real_data_reference") or {}).get("test_accuracy"),
        "outer_iterations": results["outer_iterations"],
        "simulated_samples": results["simulated_samples"],
        "selection_simulated_samples": results.get("selection_simulated_samples", 0),
        "wall_clock_s": results["wall_clock_s"],
        "render_wall_clock_s": results.get("render_wall_clock_s"),
        "renderer": results.get("renderer"),
        "hypergradient_warnings": results.get("hypergradient_warnings", []),
    }


def summarise(rows: list[dict]) -> dict:
    """Medians per variant (and the gap closed where there is an oracle) from per-seed rows."""
    by_variant = {}
    for row in sorted(rows, key=lambda r: (r["variant"], r["seed"])):
        by_variant.setdefault(row["variant"], []).append(row)
    summary = {
        variant: statistics.median(r["final_model_test_accuracy"] for r in variant_rows)
        for variant, variant_rows in by_variant.items()
    }
    references = [r["real_data_reference_test_accuracy"] for r in rows if r["real_data_reference_test_accuracy"]]
    if references:
        summary["target_data_reference"] = statistics.median(references)
    if {"default", "oracle", "autosimulate"} <= set(summary):
        gap = summary["oracle"] - summary["default"]
        summary["gap_closed"] = (summary["autosimulate"] - summary["default"]) / gap if gap else None
    summary["seeds"] = sorted({r["seed"] for r in rows})
    summary["runs"] = by_variant
    return summary


def read_rows(root_dir: str) -> list[dict]:
    """The rows recorded in `<root_dir>/rows.jsonl` (the last row per variant and seed wins)."""
    path = os.path.join(root_dir, "rows.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return list({(r["variant"], r["seed"]): r for r in rows}.values())


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
    os.makedirs(FLAGS.root_dir, exist_ok=True)
    if FLAGS.merge:
        rows = [row for folder in FLAGS.merge for row in read_rows(folder)]
    else:
        variants = FLAGS.variants or list(VARIANTS[FLAGS.benchmark])
        unknown = sorted(set(variants) - set(VARIANTS[FLAGS.benchmark]))
        if unknown:
            raise app.UsageError(
                f"--variants={unknown} are not variants of {FLAGS.benchmark}: {list(VARIANTS[FLAGS.benchmark])}"
            )
        for seed in map(int, FLAGS.seeds):
            for variant in variants:
                row = run_row(FLAGS.benchmark, variant, seed, FLAGS.root_dir)
                with open(os.path.join(FLAGS.root_dir, "rows.jsonl"), "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
        rows = read_rows(FLAGS.root_dir)
    summary = summarise(rows)
    with open(os.path.join(FLAGS.root_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}), flush=True)


if __name__ == "__main__":
    app.run(main)
