"""Influence weights of generated examples and the score-function surrogate loss.

With `z ~= (H + lambda I)^-1 grad L_val(theta)`, the influence of generated example
`i` on the validation loss is `w_i = grad_theta l(x_i, y_i; theta) . z`, and

    dF/dpsi ~= - E_c[ w(c) grad_psi log p(c | psi) ]            (AutoSimulate [1])

is estimated by the gradient of the surrogate
`S(psi) = - mean_i stop_gradient(w_i - b_i) log p(c_i | psi)`.

Per-factor baselines split the score over the named parts `j` of the latent
distribution, `log p(c | psi) = sum_j log p_j(c)`, and give each part its own
baseline: `S = - mean_i sum_j stop_gradient(w_i - b_ij) log p_j(c_i)` with

    b_ij = sum_{k != i} w_k |s_kj|^2 / sum_{k != i} |s_kj|^2,     s_kj = grad_psi log p_j(c_k),

the leave-one-out estimate of the constant that minimises `E|(w - b) s_j|^2` for part
`j` alone. It does not depend on sample `i`, so `E[(w_i - b_ij) s_ij] = E[w_i s_ij]` and the
estimator stays unbiased. A part whose score is large (a narrow Gaussian) weights the
samples where it is large, instead of sharing one mean with parts of another scale.
Parts that share psi components have cross terms this per-part choice ignores, so it is
optimal per part, not jointly.

#### References
[1]: Behl, Baydin, Gal, Torr, Vineet. AutoSimulate: (Quickly) Learning Synthetic
     Data Generation. ECCV 2020. arXiv:2008.08424.
"""

import tensorflow as tf

from autosimulate_tf.errors import ConfigError

LEAVE_ONE_OUT = "leave_one_out"
NO_BASELINE = "none"
PER_FACTOR = "per_factor"
BASELINES = (LEAVE_ONE_OUT, NO_BASELINE, PER_FACTOR)


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
    estimator stays unbiased. `"none"`: `b_i = 0`. (`"per_factor"` needs the
    scores: `per_factor_baseline_values`.)

    Args:
      influence: `[n]` influence weights, n >= 2 for leave-one-out.
      baseline: `"leave_one_out"` or `"none"`.

    Returns:
      `[n]` baselines.
    """
    if baseline not in (LEAVE_ONE_OUT, NO_BASELINE):
        raise ConfigError(f"baseline={baseline!r} is not one of {(LEAVE_ONE_OUT, NO_BASELINE)}.")
    if baseline == NO_BASELINE:
        return tf.zeros_like(influence)
    count = tf.cast(tf.shape(influence)[0], influence.dtype)
    return (tf.reduce_sum(influence) - influence) / (count - 1.0)


def squared_score_norms(score_tape: tf.GradientTape, factor_log_probs: tf.Tensor, psi_variables) -> tf.Tensor:
    """`[n, J]` squared norms `|grad_psi log p_j(c_k)|^2` of every sample's score in every part.

    One Jacobian of the `[n, J]` per-sample, per-part log-probabilities (recorded on
    `score_tape`) in all psi variables; a part that does not depend on psi scores zero.
    """
    jacobians = score_tape.jacobian(factor_log_probs, psi_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    # Each Jacobian is [n, J, *variable shape]: sum the squares over the variable's own axes.
    squares = [
        tf.reduce_sum(tf.square(tf.cast(j, factor_log_probs.dtype)), axis=list(range(2, j.shape.rank)))
        for j in jacobians
    ]
    return tf.add_n(squares) if squares else tf.zeros_like(factor_log_probs)


def per_factor_baseline_values(influence: tf.Tensor, squared_norms: tf.Tensor) -> tf.Tensor:
    """`[n, J]` leave-one-out per-part baselines `b_ij = sum_{k != i} w_k a_kj / sum_{k != i} a_kj`.

    Args:
      influence: `[n]` influence weights `w_k`, n >= 2.
      squared_norms: `[n, J]` `a_kj = |grad_psi log p_j(c_k)|^2` (`squared_score_norms`).

    Returns:
      `[n, J]` baselines, none depending on its own sample. Where the other samples'
      scores of part `j` vanish (a part free of psi), the part's score term is zero
      whatever its baseline, and the plain leave-one-out mean is used.
    """
    weights = tf.stop_gradient(influence)[:, None]
    norms = tf.stop_gradient(tf.cast(squared_norms, influence.dtype))
    numerator = tf.reduce_sum(weights * norms, axis=0) - weights * norms
    denominator = tf.reduce_sum(norms, axis=0) - norms
    # Relative threshold: the difference of sums cancels to rounding noise when sample i holds all the mass.
    usable = denominator > 1e-6 * tf.reduce_sum(norms, axis=0)
    optimal = numerator / tf.where(usable, denominator, tf.ones_like(denominator))
    return tf.where(usable, optimal, baseline_values(influence, LEAVE_ONE_OUT)[:, None] + tf.zeros_like(norms))


def surrogate_terms(log_probs: tf.Tensor, influence: tf.Tensor, baselines: tf.Tensor, importance_weights=None):
    """`[n]` per-sample terms `- stop_gradient(r_i (w_i - b_i)) log p(c_i | psi)`, summed over parts.

    `log_probs` and `baselines` are `[n]` (one baseline per sample) or `[n, J]` (one per
    sample and part, `log_probs[:, j] = log p_j(c_i)`); the mean of the terms is
    `surrogate_loss`.
    """
    # stop_gradient drops d(w_i - b_i)/dpsi: w depends on psi only through the
    # sampled data, whose dependence the score term log p accounts for.
    per_part = log_probs.shape.rank == 2
    advantages = tf.cast((influence[:, None] if per_part else influence) - baselines, log_probs.dtype)
    if importance_weights is not None:
        weights = tf.cast(importance_weights, log_probs.dtype)
        advantages = advantages * (weights[:, None] if per_part else weights)
    terms = -tf.stop_gradient(advantages) * log_probs
    return tf.reduce_sum(terms, axis=1) if per_part else terms


def surrogate_loss(
    log_probs: tf.Tensor, influence: tf.Tensor, baselines: tf.Tensor, importance_weights=None
) -> tf.Tensor:
    """`S = - mean_i stop_gradient(r_i (w_i - b_i)) * log p(c_i | psi)`.

    Its gradient in psi is the AutoSimulate hypergradient estimate; minimising it
    with any optimizer descends the validation loss.

    Args:
      log_probs: `[n]` `log p(c_i | psi)`, computed on the tape from latents that
        were `stop_gradient`-ed (see `Simulator.log_prob`), or `[n, J]` per part.
      influence: `[n]` influence weights.
      baselines: `[n]` baselines (`[n, J]` with per-part log-probabilities).
      importance_weights: optional `[n]` `r_i = p(c_i | psi) / q(c_i)` for latents
        drawn under q; `E_q[r f grad log p] = E_p[f grad log p]`. None: `r_i = 1`.

    Returns:
      Scalar surrogate loss.
    """
    return tf.reduce_mean(surrogate_terms(log_probs, influence, baselines, importance_weights))


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
    return tf.reduce_mean(cost_surrogate_terms(log_probs, costs, cost_weight, importance_weights))


def cost_surrogate_terms(
    log_probs: tf.Tensor, costs: tf.Tensor, cost_weight: float, importance_weights=None
) -> tf.Tensor:
    """`[n]` per-sample terms of `cost_surrogate_loss` (their mean is the surrogate)."""
    costs = tf.cast(costs, log_probs.dtype)
    advantages = costs - baseline_values(costs, LEAVE_ONE_OUT)
    if importance_weights is not None:
        advantages = advantages * tf.cast(importance_weights, log_probs.dtype)
    # stop_gradient: the cost depends on psi only through the sampled latents, which log p accounts for.
    return tf.cast(cost_weight, log_probs.dtype) * tf.stop_gradient(advantages) * log_probs
