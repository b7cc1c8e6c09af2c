"""Influence weights of generated examples and the score-function surrogate loss.

With `z ~= (H + lambda I)^-1 grad L_val(theta)`, the influence of generated example
`i` on the validation loss is `w_i = grad_theta l(x_i, y_i; theta) . z`, and

    dF/dpsi ~= - E_c[ w(c) grad_psi log p(c | psi) ]            (AutoSimulate [1])

is estimated by the gradient of the surrogate
`S(psi) = - mean_i stop_gradient(w_i - b_i) log p(c_i | psi)`.

#### References
[1]: Behl, Baydin, Gal, Torr, Vineet. AutoSimulate: (Quickly) Learning Synthetic
     Data Generation. ECCV 2020. arXiv:2008.08424.
"""

import tensorflow as tf

from autosimulate_tf.errors import ConfigError

LEAVE_ONE_OUT = "leave_one_out"
NO_BASELINE = "none"
BASELINES = (LEAVE_ONE_OUT, NO_BASELINE)


def influence_weights(objective, theta, inputs, labels, z) -> tf.Tensor:
    """All `w_i = grad_theta l_i . z` at once, from one forward-mode JVP.

    The JVP of the vector of per-example losses along `z` is exactly the vector of
    directional derivatives `grad l_i . z`: one forward pass instead of n backprops.

    Args:
      objective: a `TaskObjective`.
      theta: the model weights (list of tensors).
      inputs: generated inputs `[n, ...]`.
      labels: generated labels `[n, ...]`.
      z: `(H + lambda I)^-1 grad L_val`, shaped like `theta`.

    Returns:
      `[n]` influence weights.
    """
    theta = list(theta)
    z = list(z)

    def shard_influence(shard_inputs, shard_labels):
        with tf.autodiff.ForwardAccumulator(theta, z) as tangent:
            per_example = objective.per_example_losses(theta, shard_inputs, shard_labels)
        return tangent.jvp(per_example)

    # Per-example values: each replica computes its shard's, concatenated in example order.
    return objective.sharding.concatenate(shard_influence, [inputs, labels])


def baseline_values(influence: tf.Tensor, baseline: str = LEAVE_ONE_OUT) -> tf.Tensor:
    """Control-variate baseline `b_i` for each influence weight.

    `"leave_one_out"`: `b_i = mean_{j != i} w_j`, independent of sample i, so the
    estimator stays unbiased. `"none"`: `b_i = 0`.

    Args:
      influence: `[n]` influence weights, n >= 2 for leave-one-out.
      baseline: `"leave_one_out"` or `"none"`.

    Returns:
      `[n]` baselines.
    """
    if baseline not in BASELINES:
        raise ConfigError(f"baseline={baseline!r} is not one of {BASELINES}.")
    if baseline == NO_BASELINE:
        return tf.zeros_like(influence)
    count = tf.cast(tf.shape(influence)[0], influence.dtype)
    return (tf.reduce_sum(influence) - influence) / (count - 1.0)


def surrogate_loss(
    log_probs: tf.Tensor, influence: tf.Tensor, baselines: tf.Tensor, importance_weights=None
) -> tf.Tensor:
    """`S = - mean_i stop_gradient(r_i (w_i - b_i)) * log p(c_i | psi)`.

    Its gradient in psi is the AutoSimulate hypergradient estimate; minimising it
    with any optimizer descends the validation loss.

    Args:
      log_probs: `[n]` `log p(c_i | psi)`, computed on the tape from latents that
        were `stop_gradient`-ed (see `Simulator.log_prob`).
      influence: `[n]` influence weights.
      baselines: `[n]` baselines.
      importance_weights: optional `[n]` `r_i = p(c_i | psi) / q(c_i)` for latents
        drawn under q; `E_q[r f grad log p] = E_p[f grad log p]`. None: `r_i = 1`.

    Returns:
      Scalar surrogate loss.
    """
    # stop_gradient drops d(w_i - b_i)/dpsi: w depends on psi only through the
    # sampled data, whose dependence the score term log p accounts for.
    advantages = tf.cast(influence - baselines, log_probs.dtype)
    if importance_weights is not None:
        advantages = advantages * tf.cast(importance_weights, log_probs.dtype)
    return -tf.reduce_mean(tf.stop_gradient(advantages) * log_probs)


def cost_surrogate_loss(
    log_probs: tf.Tensor, costs: tf.Tensor, cost_weight: float, importance_weights=None
) -> tf.Tensor:
    """`C = beta mean_i stop_gradient(r_i (cost_i - b_i)) log p(c_i | psi)`, `b_i` the leave-one-out mean cost.

    Its gradient in psi estimates `beta grad_psi E_c[cost(c)]` (a plain score-function
    term): added to the AutoSimulate surrogate, the outer objective becomes
    `F(psi) + beta E[cost]`, so psi trades validation loss for cheaper samples (e.g. render
    time). The leave-one-out baseline keeps it unbiased.

    Args:
      log_probs: `[n]` `log p(c_i | psi)` on the tape.
      costs: `[n]` per-sample costs (not differentiated).
      cost_weight: beta >= 0, validation-loss units per unit of cost.
      importance_weights: optional `[n]` `r_i` for latents drawn under another q.

    Returns:
      Scalar surrogate.
    """
    costs = tf.cast(costs, log_probs.dtype)
    advantages = costs - baseline_values(costs, LEAVE_ONE_OUT)
    if importance_weights is not None:
        advantages = advantages * tf.cast(importance_weights, log_probs.dtype)
    # stop_gradient: the cost depends on psi only through the sampled latents, which log p accounts for.
    return tf.cast(cost_weight, log_probs.dtype) * tf.reduce_mean(tf.stop_gradient(advantages) * log_probs)
