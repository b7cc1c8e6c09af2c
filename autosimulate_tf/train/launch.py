"""Command-line entry point shared by `experiments/train.py` and `autosimulate-train`.

    autosimulate-train --gin_file=toy_gmm.gin --root_dir=/tmp/toy_gmm \
        --gin_bindings="AutoSimulateTrainer.damping = 1.0"

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
from autosimulate_tf.train.loop import RunInterruptedError, train_autosimulate
from autosimulate_tf.train.trainer import SimulatorFailureError

flags.DEFINE_string(
    "root_dir", None, "Output folder (checkpoints, summaries, results.json). Default: runs/<config>-<time>."
)
flags.DEFINE_multi_string("gin_file", ["toy_gmm.gin"], "Gin config file(s): paths or names of shipped configs.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings, e.g. 'AutoSimulateTrainer.damping = 1.0'.")
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
    try:
        configs.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_path)
    except (ValueError, KeyError, FileNotFoundError, ImportError) as error:
        raise app.UsageError(f"Bad gin configuration: {error}") from error
    root_dir = FLAGS.root_dir or default_root_dir(FLAGS.gin_file)
    tf.io.gfile.makedirs(root_dir)
    with tf.io.gfile.GFile(os.path.join(root_dir, "parsed_config.gin"), "w") as f:
        f.write(gin.config_str())
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
    except (ValueError, RuntimeError) as error:
        # Configuration values checked when the trainer is built (they name the setting), and gin's
        # "required binding not provided" errors.
        print(f"Configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    print("Found simulator parameters (constrained):")
    for name, value in results["final_psi"].items():
        print(f"  {name} = {json.dumps(value, default=float)}")
    if results["outer_iterations"]:
        print(
            f"Warm-started model: real validation accuracy {results['val_accuracy']:.3f}, held-out test accuracy "
            f"{results['test_accuracy']:.3f} after {results['outer_iterations']} outer iterations, "
            f"{results['simulated_samples']} simulated samples, {results['wall_clock_s']:.1f}s."
        )
    if "final_model" in results:
        print(
            f"Fresh model trained on {results['final_model']['samples']} samples from the final psi: "
            f"real test accuracy {results['final_model']['test_accuracy']:.3f}."
        )
    if "real_data_reference" in results:
        print(
            f"Reference model trained on real data: test accuracy {results['real_data_reference']['test_accuracy']:.3f}."
        )
    print(f"Results: {os.path.join(root_dir, 'results.json')}")


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
