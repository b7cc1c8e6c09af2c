"""Cost of the hypergradient's pieces relative to a gradient evaluation, as the task model grows.

    python benchmarks/hypergradient_cost.py --output=benchmarks/results/hypergradient_cost.json

For MLPs of ~10k, ~100k and ~1M parameters on digit-shaped inputs (8x8, 10 classes)
times, as compiled `tf.function`s on the same generated set D_t (N examples):
  gradient       one gradient of the mean training loss on D_t (the unit)
  inner_step     one inner training step (minibatch gradient + Adam update)
  gauss_newton   one damped Gauss-Newton-vector product on D_t (one CG iteration's product)
  hessian        one damped Hessian-vector product on D_t
  influence      all N influence weights (one forward-mode JVP)
  hypergradient  a whole `HypergradientEstimator.estimate` (10 CG iterations, cold start)
Methods are interleaved over the repeats and medians reported, so every ratio is
measured side by side.
"""

import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from autosimulate_tf.hypergrad import (
    GeneratedData,
    HypergradientEstimator,
    TaskObjective,
    curvature,
    influence,
    solvers,
)
from autosimulate_tf.models import mlp

flags.DEFINE_list("widths", ["64", "300", "1000"], "Hidden width of the two-layer MLPs (about 10k, 100k, 1M weights).")
flags.DEFINE_integer("num_samples", 512, "N, the size of the generated set D_t.")
flags.DEFINE_integer("num_validation", 300, "Real validation examples (the UCI digits split uses 300).")
flags.DEFINE_integer("batch_size", 64, "Minibatch of one inner step.")
flags.DEFINE_integer("repeats", 15, "Timed repeats per method (after one warm-up).")
flags.DEFINE_string("output", "benchmarks/results/hypergradient_cost.json", "Where to write the JSON figures.")
FLAGS = flags.FLAGS

INPUT_SHAPE = (8, 8)
NUM_CLASSES = 10


def timed(function, *args) -> float:
    """Seconds for one call, waiting for the result."""
    start = time.perf_counter()
    result = function(*args)
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)
    return time.perf_counter() - start


def measure(width: int, rng: np.random.Generator) -> dict:
    """Median seconds of every piece for one model size, and the ratios to a gradient."""
    model = mlp(input_shape=INPUT_SHAPE, num_outputs=NUM_CLASSES, hidden_units=(width, width), input_scale=1 / 16)
    objective = TaskObjective(model, "softmax_cross_entropy", weight_decay=1e-4)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    inputs = tf.constant(rng.integers(0, 17, (FLAGS.num_samples, *INPUT_SHAPE)), tf.float32)
    labels = tf.constant(rng.integers(0, NUM_CLASSES, FLAGS.num_samples), tf.int32)
    val_inputs = tf.constant(rng.integers(0, 17, (FLAGS.num_validation, *INPUT_SHAPE)), tf.float32)
    val_labels = tf.constant(rng.integers(0, NUM_CLASSES, FLAGS.num_validation), tf.int32)
    weights = objective.current_weights()
    vector = [tf.random.normal(tf.shape(w)) for w in weights]
    num_weights = int(sum(np.prod(w.shape) for w in weights))

    @tf.function
    def gradient():
        return objective.gradient(objective.train_loss, objective.current_weights(), inputs, labels)

    @tf.function
    def inner_step():
        indices = tf.random.uniform([FLAGS.batch_size], 0, FLAGS.num_samples, tf.int32)
        grads = objective.gradient(
            objective.train_loss, objective.current_weights(), tf.gather(inputs, indices), tf.gather(labels, indices)
        )
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return grads[0]

    def product_fn(name):
        @tf.function
        def product():
            matvec = curvature.make_damped_matvec(objective, objective.current_weights(), inputs, labels, name, 0.1)
            return matvec(vector)

        return product

    @tf.function
    def influence_weights():
        return influence.influence_weights(objective, objective.current_weights(), inputs, labels, vector)

    # The hypergradient scores the latents with the simulator's log_prob; a class prior
    # (latents = labels, psi = class logits) stands in: its cost is negligible next to the model's.
    latent_logits = tf.Variable(tf.zeros([NUM_CLASSES]))

    class _LabelScore:
        """A minimal simulator stand-in: latents are the labels, psi the class logits."""

        psi_variables = (latent_logits,)

        @staticmethod
        def log_prob(latents):
            return tf.gather(tf.nn.log_softmax(latent_logits), latents)

    estimator = HypergradientEstimator(
        solver=lambda matvec, rhs, guess: solvers.conjugate_gradient(matvec, rhs, guess, num_iterations=10),
        warm_start_solver=False,
        report_residual=False,
    )

    @tf.function
    def hypergradient():
        result = estimator.estimate(
            objective,
            _LabelScore,
            objective.current_weights(),
            GeneratedData(inputs, labels, labels),
            (val_inputs, val_labels),
        )
        return result.gradients

    methods = {
        "gradient": gradient,
        "inner_step": inner_step,
        "gauss_newton": product_fn(curvature.GAUSS_NEWTON),
        "hessian": product_fn(curvature.HESSIAN),
        "influence": influence_weights,
        "hypergradient": hypergradient,
    }
    for function in methods.values():
        timed(function)  # trace and warm up
    times = {name: [] for name in methods}
    for _ in range(FLAGS.repeats):
        for name, function in methods.items():
            times[name].append(timed(function))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "hidden_width": width,
        "num_weights": num_weights,
        "median_s": medians,
        "ratio_to_gradient": {name: medians[name] / medians["gradient"] for name in methods},
        "ratio_to_inner_step": {name: medians[name] / medians["inner_step"] for name in methods},
    }


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    rows = [measure(int(width), rng) for width in FLAGS.widths]
    header = f"{'weights':>10} | {'gradient ms':>11} | {'inner step ms':>13} | GN/grad | H/grad | infl/grad | hypergrad/grad | hypergrad/inner step"
    print(header)
    for row in rows:
        ratio = row["ratio_to_gradient"]
        print(
            f"{row['num_weights']:>10,} | {1e3 * row['median_s']['gradient']:>11.2f} | "
            f"{1e3 * row['median_s']['inner_step']:>13.2f} | {ratio['gauss_newton']:>7.2f} | {ratio['hessian']:>6.2f} | "
            f"{ratio['influence']:>9.2f} | {ratio['hypergradient']:>14.1f} | {row['ratio_to_inner_step']['hypergradient']:>20.1f}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump({"num_samples": FLAGS.num_samples, "batch_size": FLAGS.batch_size, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
