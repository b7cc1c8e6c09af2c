"""Command-line entry point of `experiments/sweep.py` / `autosimulate-sweep`: gin sweeps over seeds.

    autosimulate-sweep --root_dir=/tmp/sweep_toy --gin_file=toy_gmm.gin \
        --sweep="HypergradientEstimator.damping=[0.03, 0.1, 1.0]" --sweep="NUM_SAMPLES=[50, 200]" \
        --seeds=0,1,2 --parallel=2

Runs one trial per grid point and seed, each in its own folder under --root_dir, as a child
process of the train (or compare) binary; writes sweep.csv, summary.md (median / min / max over
seeds of --metric, printed at the end) and TensorBoard HParams data (root_dir/tensorboard).
Re-running the same command skips finished trials and resumes interrupted ones. On Ray Tune:
add --backend=ray (--ray_address=auto on a cluster; needs `pip install 'autosimulate_tf[ray]'`).
Sweep-line and sweep-file syntax: `autosimulate_tf/sweeps/spec.py`.

Exit status: 0 when every trial finished, 1 when some failed (the others still ran), 2 for a
bad sweep definition (nothing ran), 130 when interrupted (re-run to continue).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

from autosimulate_tf import configs
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.sweeps.run import RunSettings, run_sweep

flags.DEFINE_string("root_dir", None, "Sweep folder: sweep.json, one folder per trial, sweep.csv.", required=True)
flags.DEFINE_multi_string(
    "gin_file", None, "Gin config file(s) every trial uses: paths or shipped names.", required=True
)
flags.DEFINE_multi_string("gin_bindings", [], "Bindings fixed for every trial, e.g. 'NUM_INNER_STEPS = 10'.")
flags.DEFINE_multi_string("gin_search_path", [], "Extra folders searched for gin files and includes.")
flags.DEFINE_multi_string(
    "sweep", [], "A swept binding: BINDING=[v1, v2, ...] in gin syntax (repeatable; the grid is the product)."
)
flags.DEFINE_string("sweep_file", None, "A file of sweep lines, random lines (uniform/loguniform/...) and directives.")
flags.DEFINE_integer("num_random_trials", None, "Random draws of the random lines (overrides the sweep file).")
flags.DEFINE_integer("sweep_seed", None, "Seed of the random draws (overrides the sweep file; default 0).")
flags.DEFINE_list("seeds", [], "Seeds: every grid point runs once per seed (default: once, the config's seed).")
flags.DEFINE_string(
    "seed_binding",
    None,
    "How a seed is bound ({seed} marks it); default 'SEED = {seed}' (train), "
    "'run_comparison.seeds = ({seed},)' (compare).",
)
flags.DEFINE_enum("entry_point", "train", ["train", "compare"], "What each trial runs.")
flags.DEFINE_integer("parallel", None, "Trials at once (default: 1 locally; on Ray, as resources allow).")
flags.DEFINE_enum("backend", "local", ["local", "ray"], "local child processes, or Ray Tune.")
flags.DEFINE_string("ray_address", None, "Ray cluster address ('auto': the running cluster); default: a local Ray.")
flags.DEFINE_float("cpus_per_trial", None, "CPU cores per trial (caps its thread pools; Ray reserves them).")
flags.DEFINE_float("gpus_per_trial", None, "GPUs per trial (0: none; 0.5: two trials per GPU). Default: all visible.")
flags.DEFINE_bool("retry_failed", True, "Re-run failed trials on a re-run of the sweep.")
flags.DEFINE_string("metric", None, "Metric of the summary table (default: val_accuracy, val_loss for regression).")
flags.DEFINE_enum("metric_mode", "auto", ["auto", "max", "min"], "Best is max or min (auto: accuracy max, else min).")

FLAGS = flags.FLAGS


def _seeds(values) -> list[int]:
    try:
        return [int(value) for value in values]
    except ValueError as error:
        raise ConfigError(f"--seeds={','.join(values)} must be a list of integers.") from error


def main(argv) -> None:
    """Parses the flags, runs the sweep and exits with its status."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    settings = RunSettings(
        backend=FLAGS.backend,
        parallel=FLAGS.parallel,
        ray_address=FLAGS.ray_address,
        cpus_per_trial=FLAGS.cpus_per_trial,
        gpus_per_trial=FLAGS.gpus_per_trial,
        retry_failed=FLAGS.retry_failed,
        metric=FLAGS.metric,
        metric_mode=FLAGS.metric_mode,
    )
    try:
        outcome = run_sweep(
            FLAGS.root_dir,
            FLAGS.gin_file,
            FLAGS.gin_bindings,
            FLAGS.gin_search_path,
            sweep_lines=FLAGS.sweep,
            sweep_file=FLAGS.sweep_file,
            seeds=_seeds(FLAGS.seeds),
            entry_point=FLAGS.entry_point,
            seed_binding=FLAGS.seed_binding,
            num_random_trials=FLAGS.num_random_trials,
            sweep_seed=FLAGS.sweep_seed,
            settings=settings,
        )
    except ConfigError as error:
        configs.exit_for_config_error(error, "Bad sweep")
    if outcome.interrupted:
        print(f"Interrupted: run the same command again to continue (--root_dir={FLAGS.root_dir}).", file=sys.stderr)
        sys.exit(130)
    if outcome.count("failed"):
        sys.exit(1)


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
