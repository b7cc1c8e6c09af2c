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
            raise app.UsageError(f"Cannot merge: {error}") from error
        print(f"Wrote {os.path.join(FLAGS.root_dir, 'comparison.json')}")
        return
    try:
        configs.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_path)
    except (ValueError, KeyError, FileNotFoundError, ImportError) as error:
        raise app.UsageError(f"Bad gin configuration: {error}") from error
    run_comparison(root_dir=FLAGS.root_dir)
    print(f"Wrote {os.path.join(FLAGS.root_dir, 'comparison.json')}")


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
