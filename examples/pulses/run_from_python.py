"""AutoSimulate on the pulse simulator from Python: no gin file, no command-line tool.

    .venv/bin/python examples/pulses/run_from_python.py --root_dir=/tmp/pulses_python

Builds the `Problem` from constructor arguments, scores the initial psi with a fresh model,
runs the outer loop with `train_autosimulate` and scores the psi it found with the same
kind of fresh model. Python puts this script's folder on `sys.path`, so `import pulses`
needs no PYTHONPATH here.
"""

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pulses  # this folder's simulator module
from absl import app, flags, logging

from autosimulate_tf.models import mlp
from autosimulate_tf.problem import Problem
from autosimulate_tf.train import AutoSimulateTrainer, ScratchTrainingEvaluator, train_autosimulate

flags.DEFINE_string("root_dir", "/tmp/pulses_python", "Output folder (checkpoints, results.json, summaries).")
flags.DEFINE_integer("num_outer_iterations", 150, "Outer iterations of AutoSimulate.")
flags.DEFINE_integer("num_samples", 400, "Latents rendered per outer iteration.")
flags.DEFINE_integer("evaluation_samples", 2000, "Renders the fresh models before and after are trained on.")
flags.DEFINE_integer("evaluation_steps", 1000, "Adam steps of each fresh model.")
flags.DEFINE_integer("seed", 0, "Seed of the run and of both fresh models.")

FLAGS = flags.FLAGS


def build_problem() -> Problem:
    """The problem of train.gin, from constructor arguments."""
    return Problem(
        simulator=pulses.PulseShapeSimulator(),
        real_data=pulses.pulse_real_data(label="shape"),
        model_fn=functools.partial(mlp, hidden_units=(32,), activation="tanh"),
        loss="softmax_cross_entropy",
    )


def main(argv) -> None:
    """Scores the initial psi, tunes psi, scores the found psi; prints both scores."""
    del argv
    # TensorFlow logs every checkpoint save at INFO, which would drown the progress lines.
    logging.set_verbosity(logging.WARNING)
    problem = build_problem()
    # A fresh model trained on renders from the simulator's *current* psi, scored on the real data.
    evaluator = ScratchTrainingEvaluator(
        problem, num_samples=FLAGS.evaluation_samples, num_steps=FLAGS.evaluation_steps
    )
    before = evaluator.evaluate(seed=FLAGS.seed)
    # train_autosimulate builds the trainer with `trainer_factory(problem=problem)`; the
    # optimizers are factories so that a resumed run rebuilds them before restoring them.
    trainer_factory = functools.partial(
        AutoSimulateTrainer,
        num_samples=FLAGS.num_samples,
        num_inner_steps=30,
        inner_optimizer=lambda: keras.optimizers.Adam(0.01),
        outer_optimizer=lambda: keras.optimizers.Adam(0.1),
        seed=FLAGS.seed,
    )
    results = train_autosimulate(
        root_dir=FLAGS.root_dir,
        num_outer_iterations=FLAGS.num_outer_iterations,
        problem=problem,
        trainer_factory=trainer_factory,
    )
    # The run leaves the simulator at the last psi iterate, so the same evaluator now scores it.
    after = evaluator.evaluate(seed=FLAGS.seed)
    print("Found psi:", results["final_psi"])
    print(f"Fresh model on the initial psi: real test accuracy {before['test_accuracy']:.3f}")
    print(f"Fresh model on the found psi:   real test accuracy {after['test_accuracy']:.3f}")


if __name__ == "__main__":
    app.run(main)
