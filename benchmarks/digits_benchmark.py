"""Sim-to-real digits benchmark: untuned default vs AutoSimulate, real test accuracy over seeds.

    python benchmarks/digits_benchmark.py --root_dir=/tmp/digits_benchmark --seeds=0,1,2

For every seed runs gin/digits_default.gin and gin/digits_autosimulate.gin (each trains a
fresh CNN on 60k renders and scores it on the 1497 real UCI test digits), then prints and
writes (`summary.json`) the medians and the gain of the tuned over the default simulator.
A run folder that already holds a finished run is not tuned again (train_autosimulate
resumes from its checkpoint), so re-running with other bindings for what happens after
tuning (psi selection, the final model) re-scores existing runs; hand-off steps whose settings
did not change are re-read from hand_off.json.
"""

import json
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gin
from absl import app, flags, logging

from autosimulate_tf import configs
from autosimulate_tf.train import train_autosimulate

flags.DEFINE_string("root_dir", "/tmp/digits_benchmark", "Output folder (one sub-folder per config and seed).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings for both configs.")
flags.DEFINE_multi_string("autosimulate_gin_bindings", [], "Extra bindings for digits_autosimulate.gin only.")
flags.DEFINE_list("configs", ["digits_default.gin", "digits_autosimulate.gin"], "Which of the two configs to run.")
FLAGS = flags.FLAGS

CONFIGS = ("digits_default.gin", "digits_autosimulate.gin")


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
    rows = {config: [] for config in FLAGS.configs}
    for seed in FLAGS.seeds:
        for config in FLAGS.configs:
            gin.clear_config()
            extra = FLAGS.autosimulate_gin_bindings if config == "digits_autosimulate.gin" else []
            configs.parse_gin([config], [f"SEED = {seed}", *FLAGS.gin_bindings, *extra])
            root_dir = os.path.join(FLAGS.root_dir, f"{config.removesuffix('.gin')}-seed{seed}")
            results = train_autosimulate(root_dir=root_dir)
            row = {
                "seed": int(seed),
                "final_model_test_accuracy": results["final_model"]["test_accuracy"],
                "real_data_reference_test_accuracy": results["real_data_reference"]["test_accuracy"],
                "outer_iterations": results["outer_iterations"],
                "simulated_samples": results["simulated_samples"],
                "selected_psi_candidate": results.get("selected_psi_candidate"),
                "selection_simulated_samples": results.get("selection_simulated_samples", 0),
                "wall_clock_s": results["wall_clock_s"],
            }
            rows[config].append(row)
            print(config, row, flush=True)
    summary = {}
    for config, config_rows in rows.items():
        summary[config] = {
            "median_final_model_test_accuracy": statistics.median(r["final_model_test_accuracy"] for r in config_rows),
            "median_real_data_reference_test_accuracy": statistics.median(
                r["real_data_reference_test_accuracy"] for r in config_rows
            ),
            "runs": config_rows,
        }
    if set(CONFIGS) <= set(summary):
        default, tuned = (summary[c]["median_final_model_test_accuracy"] for c in CONFIGS)
        summary["gain_points"] = 100 * (tuned - default)
        print(
            f"median real test accuracy: default {default:.3f}, AutoSimulate {tuned:.3f}, gain {100 * (tuned - default):+.1f}"
        )
    with open(os.path.join(FLAGS.root_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    app.run(main)
