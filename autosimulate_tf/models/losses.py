"""Per-example task losses and the curvature of each loss in its outputs.

Every loss here is written per example (shape `[n]`) because the influence
weights need one loss per generated sample, and comes with the product of its
Hessian with respect to the model outputs, which the Gauss-Newton curvature
(`J^T H_l J`) needs.
"""

import tensorflow as tf

SOFTMAX_CROSS_ENTROPY = "softmax_cross_entropy"
SQUARED_ERROR = "squared_error"
LOSSES = (SOFTMAX_CROSS_ENTROPY, SQUARED_ERROR)


def check_loss_name(loss: str) -> None:
    """Raises ValueError naming the setting when `loss` is not a known loss."""
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not a known task loss; choose one of {LOSSES}.")


def per_example_loss(loss: str, outputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Loss of each example.

    Args:
      loss: `"softmax_cross_entropy"` (outputs are logits `[n, classes]`, labels
        integer classes `[n]`) or `"squared_error"` (`0.5 * |outputs - labels|^2`
        summed over output dimensions; labels shaped like outputs or `[n]` for a
        single output).
      outputs: model outputs, `[n, ...]`.
      labels: targets.

    Returns:
      A `[n]` tensor of losses.
    """
    check_loss_name(loss)
    if loss == SOFTMAX_CROSS_ENTROPY:
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=outputs)
    labels = tf.reshape(tf.cast(labels, outputs.dtype), tf.shape(outputs))
    residual = tf.reshape(outputs - labels, [tf.shape(outputs)[0], -1])
    return 0.5 * tf.reduce_sum(tf.square(residual), axis=1)


def output_hessian_vector_product(loss: str, outputs: tf.Tensor, vectors: tf.Tensor) -> tf.Tensor:
    """Per-example `H_l u`, where `H_l` is the Hessian of the loss in the outputs.

    Both Hessians are positive semi-definite, which is what makes the
    Gauss-Newton matrix a safe choice for conjugate gradients.

    Args:
      loss: as in `per_example_loss`.
      outputs: model outputs `[n, ...]` (logits for cross-entropy).
      vectors: `u`, shaped like `outputs`.

    Returns:
      `H_l u`, shaped like `outputs`.
    """
    check_loss_name(loss)
    if loss == SOFTMAX_CROSS_ENTROPY:
        # Hessian of softmax cross-entropy in the logits: diag(p) - p p^T.
        probabilities = tf.nn.softmax(outputs, axis=-1)
        projection = tf.reduce_sum(probabilities * vectors, axis=-1, keepdims=True)
        return probabilities * vectors - probabilities * projection
    return vectors


def accuracy(loss: str, outputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Fraction of correct argmax predictions (classification losses only)."""
    if loss != SOFTMAX_CROSS_ENTROPY:
        raise ValueError(f"accuracy is defined for classification; loss={loss!r}.")
    predictions = tf.argmax(outputs, axis=-1, output_type=tf.int32)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    return tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32))


def per_example_expected_error(outputs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """`[n]` expected 0-1 errors `1 - softmax(outputs)[y]` of a classifier's logits.

    The probability that a prediction drawn from the model's softmax is wrong: bounded in
    [0, 1] and, unlike cross-entropy, not dominated by a few confidently wrong examples.
    Its gradient in the logits, `p_y (p - e_y)`, vanishes for examples the model gets
    confidently right *or* confidently wrong, so it weights the borderline examples that
    decide accuracy.
    """
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    probabilities = tf.nn.softmax(outputs, axis=-1)
    return 1.0 - tf.gather(probabilities, labels, axis=-1, batch_dims=1)
