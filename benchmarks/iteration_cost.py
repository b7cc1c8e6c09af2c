"""Where an AutoSimulate outer iteration's time goes: the first one (tracing) and the later ones.

    python benchmarks/iteration_cost.py --gin_file=compare_gmm.gin --seeds=1,2,3
    python benchmarks/iteration_cost.py --gin_file=compare_gmm.gin --seeds=1,2,3 --baseline_evaluations=30

Builds one trainer per seed in one process, as `experiments/compare.py` does, and prints the
render / inner-training / hypergradient split of its first outer iteration and the median
split of the next `--iterations`. The first trainer in a process also pays one-off costs
(TensorFlow start-up, AutoGraph conversions cached for later trainers), so it is reported on
its own line. With `--baseline_evaluations`, also the median time of one scratch-training
evaluation (the unit of Learning to Simulate and random search) on the same problem.

To compare two versions of the code, run this script from each checkout in turn (e.g. a
`git worktree` of the older commit, with this file copied in: it uses only the trainer's step
metrics, which older commits have too), alternating, on an otherwise idle machine.
"""

import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging

from autosimulate_tf import configs
from autosimulate_tf.problem import Problem
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator
from autosimulate_tf.train.trainer import AutoSimulateTrainer

flags.DEFINE_multi_string("gin_file", ["compare_gmm.gin"], "Gin config(s) defining the problem and the trainer.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings.")
flags.DEFINE_list("seeds", ["1", "2", "3"], "One trainer per seed, in this order, in one process.")
flags.DEFINE_integer("iterations", 40, "Later outer iterations to time per seed.")
flags.DEFINE_integer("baseline_evaluations", 0, "Scratch-training evaluations to time (0: none).")
FLAGS = flags.FLAGS

PHASES = ("render_s", "inner_s", "hypergradient_s", "iteration_s")


def _milliseconds(metrics: dict) -> str:
    return " / ".join(f"{1000 * metrics[name]:.1f}" for name in PHASES)


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
    configs.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
    print("ms: render / inner / hypergradient / whole iteration")
    for position, seed in enumerate(int(s) for s in FLAGS.seeds):
        problem = Problem()
        trainer = AutoSimulateTrainer(problem=problem, seed=seed)
        first = trainer.step()
        later = [trainer.step() for _ in range(FLAGS.iterations)]
        median = {name: statistics.median(m[name] for m in later) for name in PHASES}
        label = "first trainer in the process" if position == 0 else "later trainer"
        print(
            f"seed {seed} ({label}): first iteration {_milliseconds(first)}; median of next {len(later)}: "
            f"{_milliseconds(median)}",
            flush=True,
        )
    if FLAGS.baseline_evaluations:
        evaluator = ScratchTrainingEvaluator(problem)
        evaluator.evaluate(0)  # Tracing, not counted.
        times = [evaluator.evaluate(seed)["wall_clock_s"] for seed in range(1, FLAGS.baseline_evaluations + 1)]
        print(f"scratch-training evaluation: median {1000 * statistics.median(times):.1f} ms", flush=True)


if __name__ == "__main__":
    app.run(main)
