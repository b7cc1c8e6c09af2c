"""Command-line entry point of `experiments/compare.py` / `autosimulate-compare`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

from autosimulate_tf import configs
from autosimulate_tf.comparison.compare import merge_comparisons, run_comparison

flags.DEFINE_string(
    "root_dir", None, "Output folder for comparison.json, runs.json, table.txt and plots.", required=True
)
flags.DEFINE_multi_string("gin_file", ["compare_gmm.gin"], "Gin config file(s): paths or names of shipped configs.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings.")
flags.DEFINE_multi_string("gin_search_path", [], "Extra folders searched for gin files and includes.")
flags.DEFINE_list(
    "merge",
    [],
    "Instead of running: merge the finished comparison folders listed here (same config, disjoint "
    "seeds, e.g. one process per seed) into --root_dir.",
)

FLAGS = flags.FLAGS


def main(argv) -> None:
    """Parses gin and runs the comparison."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    if FLAGS.merge:
        try:
            merge_comparisons(FLAGS.root_dir, FLAGS.merge)
        except ValueError as error:
            configs.exit_for_config_error(error, "Cannot merge")
        print(f"Wrote {os.path.join(FLAGS.root_dir, 'comparison.json')}")
        return
    configs.parse_gin_or_exit(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_path)
    try:
        run_comparison(root_dir=FLAGS.root_dir)
    except Exception as error:
        # Settings are checked before any method runs; anything else keeps its traceback.
        if configs.is_config_error(error):
            configs.exit_for_config_error(error)
        raise
    print(f"Wrote {os.path.join(FLAGS.root_dir, 'comparison.json')}")


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
