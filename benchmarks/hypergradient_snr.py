"""Signal-to-noise of the digits hypergradient under the estimator options, and why it is low.

    python benchmarks/hypergradient_snr.py --seeds=0,1 --output=benchmarks/results/hypergradient_snr.json

For each variant (a set of gin bindings on top of `digits_autosimulate.gin`) and seed, runs
`--num_iterations` outer iterations and records, per iteration, the psi gradient (after
the step rule) and the per-sample influence weights `w_i`. Reported per variant (medians
over seeds):

  across_iteration_snr   per psi component, |mean_t g_t| / std_t g_t over the iterations
                         after `--skip`; its median over components
  significant_fraction   fraction of components whose mean over those iterations is more
                         than two standard errors (std_t / sqrt(T)) from zero
  within_step_snr        median over iterations of `psi_snr_median` (`report_snr`): per
                         component |mean_i g_i| / (std_i g_i / sqrt(n)) of the per-sample
                         contributions of one estimate
  influence_kurtosis     median over iterations of the kurtosis of w_i (3 for a Gaussian)
  influence_top5_share   median share of sum_i (w_i - mean w)^2 held by the 5 largest terms
  influence_class_r2     median fraction of the variance of w_i explained by the class label

Functions run eagerly (`tf.config.run_functions_eagerly`) so that every estimate can be
read; the estimates are the ones a compiled run computes.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from absl import app, flags
from hypergradient_recording import record_run

GIN_FILE = "digits_autosimulate.gin"
VARIANTS = {
    "leave_one_out (shipped)": (),
    "per_factor baseline": ("HypergradientEstimator.baseline = 'per_factor'",),
    "reuse 3 iterations": ("AutoSimulateTrainer.reuse_iterations = 3",),
    "N = 1024": ("NUM_SAMPLES = 1024",),
}

flags.DEFINE_list("seeds", ["0", "1"], "Seeds.")
flags.DEFINE_list("variants", list(VARIANTS), "Variants (keys of VARIANTS).")
flags.DEFINE_integer("num_iterations", 60, "Outer iterations per run.")
flags.DEFINE_integer("skip", 10, "First iterations left out of the statistics (psi still at its start).")
flags.DEFINE_string("output", "/tmp/hypergradient_snr.json", "Where the JSON goes.")
FLAGS = flags.FLAGS


def influence_statistics(influence: np.ndarray, labels: np.ndarray) -> dict:
    """Kurtosis, top-5 share of the squared deviations and the class label's R^2 of one iteration's w."""
    centred = influence - influence.mean()
    squares = np.sort(centred**2)[::-1]
    within = sum(np.sum((influence[labels == k] - influence[labels == k].mean()) ** 2) for k in np.unique(labels))
    return {
        "influence_kurtosis": float(np.mean(centred**4) / np.mean(centred**2) ** 2),
        "influence_top5_share": float(squares[:5].sum() / squares.sum()),
        "influence_class_r2": float(1.0 - within / squares.sum()),
    }


def run_statistics(run: dict, skip: int) -> dict:
    """The module docstring's figures for one run, over the iterations after `skip`."""
    gradients = run["gradients"][skip:]
    moving = np.std(gradients, axis=0) > 0  # components the latents depend on
    mean, std = np.mean(gradients[:, moving], axis=0), np.std(gradients[:, moving], axis=0, ddof=1)
    per_iteration = [
        influence_statistics(w, y) for w, y in zip(run["influence"][skip:], run["labels"][skip:], strict=True)
    ]
    return {
        "across_iteration_snr": float(np.median(np.abs(mean) / std)),
        "significant_fraction": float(np.mean(np.abs(mean) > 2 * std / np.sqrt(len(gradients)))),
        "within_step_snr": float(np.median(run["within_step_snr"][skip:])),
        **{key: float(np.median([s[key] for s in per_iteration])) for key in per_iteration[0]},
    }


def main(argv) -> None:
    """Runs every variant at every seed and writes the per-seed and median figures."""
    del argv
    tf.config.run_functions_eagerly(True)
    unknown = [v for v in FLAGS.variants if v not in VARIANTS]
    if unknown:
        raise app.UsageError(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    results = {"gin_file": GIN_FILE, "num_iterations": FLAGS.num_iterations, "skip": FLAGS.skip, "variants": {}}
    for name in FLAGS.variants:
        per_seed = {}
        for seed in (int(s) for s in FLAGS.seeds):
            per_seed[str(seed)] = run_statistics(
                record_run(VARIANTS[name], seed, FLAGS.num_iterations, GIN_FILE), FLAGS.skip
            )
            print(name, seed, per_seed[str(seed)], flush=True)
        medians = {key: float(np.median([s[key] for s in per_seed.values()])) for key in next(iter(per_seed.values()))}
        results["variants"][name] = {"bindings": list(VARIANTS[name]), "median": medians, "per_seed": per_seed}
        with open(FLAGS.output, "w") as stream:  # rewritten after each variant: a partial run keeps what it has
            json.dump(results, stream, indent=2)


if __name__ == "__main__":
    app.run(main)
