"""Command-line entry point shared by `experiments/train.py` and `autosimulate-train`.

    autosimulate-train --gin_file=toy_gmm.gin --root_dir=/tmp/toy_gmm \
        --gin_bindings="HypergradientEstimator.damping = 1.0"

With no flags it runs the shipped toy experiment (`toy_gmm.gin`) in a fresh
`runs/toy_gmm-<time>` folder. Re-running with the same `--root_dir` continues
from the latest checkpoint.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin
import tensorflow as tf
from absl import app, flags, logging

from autosimulate_tf import configs
from autosimulate_tf.train import results_io
from autosimulate_tf.train.loop import RunInterruptedError, train_autosimulate
from autosimulate_tf.train.trainer import SimulatorFailureError

flags.DEFINE_string(
    "root_dir", None, "Output folder (checkpoints, summaries, results.json). Default: runs/<config>-<time>."
)
flags.DEFINE_multi_string("gin_file", ["toy_gmm.gin"], "Gin config file(s): paths or names of shipped configs.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings, e.g. 'HypergradientEstimator.damping = 1.0'.")
flags.DEFINE_multi_string("gin_search_path", [], "Extra folders searched for gin files and includes.")
flags.DEFINE_bool("run_functions_eagerly", False, "Run tf.functions eagerly (debugging).")

FLAGS = flags.FLAGS


def default_root_dir(gin_files) -> str:
    """`runs/<first config name>-<timestamp>` in the working directory."""
    name = os.path.splitext(os.path.basename(gin_files[0]))[0] if gin_files else "run"
    return os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def main(argv) -> None:
    """Parses gin, logs the config, runs the experiment and prints what it found."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        # TF's INFO lines (one per checkpoint save) would drown the progress lines.
        logging.set_verbosity(logging.WARNING)
    tf.config.run_functions_eagerly(FLAGS.run_functions_eagerly)
    configs.parse_gin_or_exit(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_path)
    root_dir = FLAGS.root_dir or default_root_dir(FLAGS.gin_file)
    tf.io.gfile.makedirs(root_dir)
    results_io.write_text_if_changed(os.path.join(root_dir, "parsed_config.gin"), gin.config_str())
    logging.info("Parsed gin config:\n%s", gin.config_str())
    print(f"AutoSimulate run in {root_dir} (config: {', '.join(FLAGS.gin_file)}; parsed config in parsed_config.gin)")
    try:
        results = train_autosimulate(root_dir=root_dir)
    except RunInterruptedError as error:
        print(str(error), file=sys.stderr)
        sys.exit(130)
    except SimulatorFailureError as error:
        print(f"Simulator failure: {error}", file=sys.stderr)
        sys.exit(3)
    except Exception as error:
        # Settings checked when the problem, trainer and hand-off are built (they name the setting)
        # and gin's "required binding not provided"; anything else keeps its traceback.
        if configs.is_config_error(error):
            configs.exit_for_config_error(error)
        raise
    _print_summary(root_dir, results)


def _print_summary(root_dir: str, results: dict) -> None:
    """What the run found, in a few lines."""
    print("Found simulator parameters (constrained):")
    for name, value in results["final_psi"].items():
        print(f"  {name} = {json.dumps(value, default=float)}")
    if results["outer_iterations"]:
        print(
            f"Warm-started model: real validation {_scores(results, 'val')}, held-out test {_scores(results, 'test')} "
            f"after {results['outer_iterations']} outer iterations (before the first psi update: validation "
            f"{_scores(results, 'initial_val')}), {results['simulated_samples']} simulated samples, "
            f"{results['wall_clock_s']:.1f}s."
        )
    if "final_model" in results:
        print(
            f"Fresh model trained on {results['final_model']['simulated_samples']} samples from the final psi: "
            f"real test {_scores(results['final_model'], 'test')}."
        )
    if "real_data_reference" in results:
        print(f"Reference model trained on real data: test {_scores(results['real_data_reference'], 'test')}.")
    print(f"Results: {os.path.join(root_dir, 'results.json')}")


def _scores(results: dict, prefix: str) -> str:
    """`accuracy 0.912` (classification) or `loss 0.0213` (regression) of `prefix_*` in `results`."""
    accuracy = results.get(f"{prefix}_accuracy")
    if accuracy is not None:
        return f"accuracy {accuracy:.3f}"
    return f"loss {results[f'{prefix}_loss']:.4f}"


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
