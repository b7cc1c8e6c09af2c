"""The two pieces every task-model training shares: minibatch steps and scoring.

AutoSimulate's warm-started inner training and every fresh model (the final model, psi
selection, the real-data reference, the referee and the baselines' evaluations) train
with `minibatch_steps` and are scored with `score`, so they cannot drift apart.
"""

import numpy as np
import tensorflow as tf

from autosimulate_tf.data import pipeline
from autosimulate_tf.hypergrad import tree_math
from autosimulate_tf.models import losses


def minibatch_steps(objective, optimizer, inputs, labels, num_steps, seed, batch_size: int, example_weights=None):
    """`num_steps` optimizer steps on minibatches of `(inputs, labels)`, from the model's current weights.

    Minibatches are drawn with replacement, statelessly from `seed` and the step index
    (`pipeline.minibatch_indices`), so a restarted run draws the same ones. A
    non-finite minibatch gradient is replaced by zeros, so the weights never become
    non-finite (the count is returned). Meant to run inside a compiled function.

    Args:
      objective: the model's `TaskObjective` (its `train_loss`: mean loss plus weight decay).
      optimizer: a built Keras optimizer over `objective.model.trainable_variables`.
      inputs: training inputs `[n, ...]`.
      labels: training labels `[n, ...]`.
      num_steps: scalar integer tensor or int.
      seed: shape-[2] integer stateless seed.
      batch_size: minibatch size.
      example_weights: optional `[n]` per-example weights of the loss (importance weights).

    Returns:
      `(last minibatch loss, number of non-finite gradients)`; the loss is NaN when
      `num_steps` is 0.
    """
    num_examples = tf.shape(inputs)[0]
    variables = objective.model.trainable_variables
    num_steps = tf.convert_to_tensor(num_steps)

    def one_step(step, loss, nonfinite):
        indices = pipeline.minibatch_indices(seed, step, batch_size, num_examples)
        # The minibatch is split over the strategy's replicas (one device: a plain gradient).
        batch = [tf.gather(inputs, indices), tf.gather(labels, indices)]
        if example_weights is not None:
            batch.append(tf.gather(example_weights, indices))
        loss, gradients = objective.mean_value_and_gradient(objective.train_loss, objective.current_weights(), *batch)
        finite = tree_math.all_finite(gradients)
        gradients = [tf.where(finite, g, tf.zeros_like(g)) for g in gradients]
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return step + 1, tf.cast(loss, tf.float32), nonfinite + tf.cast(tf.logical_not(finite), tf.int64)

    # An explicit loop rather than `for step in tf.range(...)`, so no AutoGraph is needed (tracing.py).
    _, loss, nonfinite = tf.while_loop(
        lambda step, loss, nonfinite: step < num_steps,
        one_step,
        (tf.constant(0, num_steps.dtype), tf.constant(np.nan, tf.float32), tf.constant(0, tf.int64)),
    )
    return loss, nonfinite


def restart_from(model, optimizer, initial_weights) -> None:
    """Sets `model`'s trainable variables to `initial_weights` and zeroes `optimizer`'s state.

    Zeroes the moments and the step counter (Adam's bias correction starts again), keeps
    the learning rate: the model then trains exactly as a freshly built one would.
    """
    for variable, value in zip(model.trainable_variables, initial_weights, strict=True):
        variable.assign(value)
    for variable in optimizer.variables:
        if "learning_rate" not in variable.name:
            variable.assign(tf.zeros_like(variable))


def score(model, loss: str, inputs, labels):
    """`(mean loss, accuracy)` of `model` on `(inputs, labels)`; accuracy is NaN for regression.

    Traceable; `as_scores` turns the pair into the reported dict.
    """
    outputs = model(inputs, training=False)
    mean_loss = tf.reduce_mean(losses.per_example_loss(loss, outputs, labels))
    if loss == losses.SOFTMAX_CROSS_ENTROPY:
        return mean_loss, losses.accuracy(loss, outputs, labels)
    return mean_loss, tf.constant(np.nan, tf.float32)


def as_scores(prefix: str, loss_and_accuracy, is_classification: bool) -> dict:
    """`{prefix_loss: float, prefix_accuracy: float or None}` from `score`'s pair (None: regression)."""
    loss, accuracy = loss_and_accuracy
    return {f"{prefix}_loss": float(loss), f"{prefix}_accuracy": float(accuracy) if is_classification else None}
