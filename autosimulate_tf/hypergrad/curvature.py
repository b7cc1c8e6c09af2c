"""Curvature-vector products of the training loss: full Hessian or Gauss-Newton.

Only products are ever formed (never the matrix, except by the `exact` solver),
so their cost is a small constant times one gradient evaluation.
"""

import tensorflow as tf

from autosimulate_tf.hypergrad import tree_math
from autosimulate_tf.models import losses

HESSIAN = "hessian"
GAUSS_NEWTON = "gauss_newton"
CURVATURES = (HESSIAN, GAUSS_NEWTON)


def hessian_vector_product(objective, theta, inputs, labels, vector) -> list[tf.Tensor]:
    """`H v` for the Hessian of `L_train` by forward-over-reverse differentiation.

    Args:
      objective: a `TaskObjective`.
      theta: the model weights, a list of tensors.
      inputs: generated inputs `D_t`.
      labels: generated labels.
      vector: list of tensors shaped like `theta`.

    Returns:
      `H v`, shaped like `theta`.
    """
    theta = list(theta)
    with tf.autodiff.ForwardAccumulator(theta, list(vector)) as tangent:
        gradient = objective.gradient(objective.train_loss, theta, inputs, labels)
    return [tangent.jvp(g) for g in gradient]


def gauss_newton_vector_product(objective, theta, inputs, labels, vector) -> list[tf.Tensor]:
    """`G v` with `G = J^T H_l J / n + weight_decay I` (generalised Gauss-Newton).

    `J` is the Jacobian of the model outputs in the weights and `H_l` the Hessian of
    the loss in the outputs. `G` is positive semi-definite for the losses we ship,
    so conjugate gradients cannot meet negative curvature (with damping > 0).

    Args: as in `hessian_vector_product`.

    Returns:
      `G v`, shaped like `theta`.
    """
    theta = list(theta)
    vector = list(vector)
    with tf.GradientTape() as transpose_tape:
        transpose_tape.watch(theta)
        with tf.autodiff.ForwardAccumulator(theta, vector) as tangent:
            outputs = objective.outputs(theta, inputs)
        jacobian_vector = tangent.jvp(outputs)
        loss_curvature = tf.stop_gradient(
            losses.output_hessian_vector_product(objective.loss, outputs, jacobian_vector)
        )
        # d/dtheta sum(outputs * u) = J^T u: the reverse pass applies J^T to H_l J v.
        count = tf.cast(tf.shape(outputs)[0], outputs.dtype)
        pairing = tf.reduce_sum(outputs * loss_curvature) / count
    product = transpose_tape.gradient(pairing, theta)
    return tree_math.axpy(objective.weight_decay, vector, product)


def make_damped_matvec(objective, theta, inputs, labels, curvature: str, damping: float):
    """Returns `v -> (C + damping I) v` for curvature `C` at `theta` on `(inputs, labels)`.

    Data-parallel over `objective.sharding`'s replicas when there are several.

    Args:
      objective: a `TaskObjective`.
      theta: the model weights.
      inputs: generated inputs.
      labels: generated labels.
      curvature: `"hessian"` or `"gauss_newton"`.
      damping: lambda >= 0.

    Raises:
      ValueError: for an unknown curvature or negative damping (naming the setting).
    """
    if curvature not in CURVATURES:
        raise ValueError(f"curvature={curvature!r} is not one of {CURVATURES}.")
    if damping < 0:
        raise ValueError(f"damping={damping} must be >= 0.")
    product = hessian_vector_product if curvature == HESSIAN else gauss_newton_vector_product

    def matvec(vector):
        # Curvature of a mean loss is the shard-size-weighted sum of the shards' curvatures.
        curvature_vector = objective.sharding.weighted_mean(
            lambda shard_inputs, shard_labels: product(objective, theta, shard_inputs, shard_labels, vector),
            [inputs, labels],
        )
        return tree_math.axpy(damping, vector, curvature_vector)

    return matvec
