"""One AutoSimulate hypergradient: steps 3-6 of an outer iteration (DESIGN.md section 2).

    v = grad_theta L_val(theta)                      the single objective evaluation
    z ~= (C + lambda I)^-1 v                         a solver, curvature products only
    w_i = grad_theta l_i . z                         one forward-mode JVP
    dF/dpsi ~= grad_psi S,  S = -mean_i sg(w_i - b_i) log p(c_i | psi)

#### References
[1]: Behl, Baydin, Gal, Torr, Vineet. AutoSimulate: (Quickly) Learning Synthetic
     Data Generation. ECCV 2020. arXiv:2008.08424.
"""

from typing import NamedTuple

import tensorflow as tf

from autosimulate_tf.hypergrad import curvature as curvature_lib
from autosimulate_tf.hypergrad import influence, tree_math


class HypergradientResult(NamedTuple):
    """Output of `estimate_hypergradient`.

    Attributes:
      gradients: estimate of dF/dpsi, one tensor per `simulator.psi_variables`.
      direction: `z`, shaped like the model weights (warm start for the next solve).
      influence_weights: `[n]` per-example `w_i`.
      diagnostics: dict of scalar tensors for logging (see `estimate_hypergradient`).
    """

    gradients: list
    direction: list
    influence_weights: tf.Tensor
    diagnostics: dict


def estimate_hypergradient(
    objective,
    simulator,
    weights,
    train_inputs,
    train_labels,
    latents,
    validation_inputs,
    validation_labels,
    solver,
    curvature: str = curvature_lib.GAUSS_NEWTON,
    damping: float = 0.1,
    baseline: str = influence.LEAVE_ONE_OUT,
    initial_guess=None,
    report_residual: bool = True,
    importance_weights=None,
) -> HypergradientResult:
    """Approximate hypergradient of the validation loss in the simulator parameters.

    Args:
      objective: `TaskObjective` (model, loss, weight decay).
      simulator: the `Simulator` whose `log_prob` scores `latents`.
      weights: the warm-started model weights theta (list of tensors).
      train_inputs: generated inputs `D_t` rendered from `latents`.
      train_labels: generated labels.
      latents: the latents `c_i` that produced `D_t` (same order).
      validation_inputs: real validation inputs.
      validation_labels: real validation labels.
      solver: a solver from `autosimulate_tf.hypergrad.solvers` (knobs bound).
      curvature: `"gauss_newton"` or `"hessian"`.
      damping: lambda >= 0 added to the curvature.
      baseline: `"leave_one_out"` or `"none"`.
      initial_guess: warm start for the solver (previous `z`), or None.
      report_residual: spend one extra curvature product to report the relative
        residual `|(C + lambda I) z - v| / |v|`.
      importance_weights: optional `[n]` weights `p(c_i | psi) / q(c_i)` for latents
        drawn under another distribution q (reused renders); they multiply each
        sample's score-function term. None: all latents were drawn under psi.

    Returns:
      A `HypergradientResult`. Diagnostics: `validation_loss`,
      `validation_gradient_norm`, `direction_norm`, `solver_residual` (-1 when not
      computed), `negative_curvature`, `solver_iterations`, `hvp_count`,
      `influence_mean`, `influence_std`, `hypergradient_norm`, `inner_gradient_norm`.
    """
    weights = list(weights)
    validation_loss, validation_gradient = objective.mean_value_and_gradient(
        objective.validation_loss, weights, validation_inputs, validation_labels
    )
    matvec = curvature_lib.make_damped_matvec(objective, weights, train_inputs, train_labels, curvature, damping)
    solved = solver(matvec, validation_gradient, initial_guess)
    direction = solved.solution
    hvp_count = solved.num_matvecs
    validation_gradient_norm = tree_math.norm(validation_gradient)
    if report_residual:
        residual = tree_math.subtract(matvec(direction), validation_gradient)
        solver_residual = tree_math.norm(residual) / (validation_gradient_norm + 1e-30)
        hvp_count += 1
    else:
        solver_residual = tf.constant(-1.0, validation_gradient_norm.dtype)

    weights_influence = influence.influence_weights(objective, weights, train_inputs, train_labels, direction)
    baselines = influence.baseline_values(weights_influence, baseline)
    psi_variables = simulator.psi_variables
    with tf.GradientTape() as psi_tape:
        log_probs = simulator.log_prob(latents)
        surrogate = influence.surrogate_loss(log_probs, weights_influence, baselines, importance_weights)
    gradients = psi_tape.gradient(surrogate, psi_variables)
    gradients = [
        tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
        for g, v in zip(gradients, psi_variables, strict=True)
    ]

    _, inner_gradient = objective.mean_value_and_gradient(objective.train_loss, weights, train_inputs, train_labels)
    diagnostics = {
        "validation_loss": validation_loss,
        "validation_gradient_norm": validation_gradient_norm,
        "direction_norm": tree_math.norm(direction),
        "solver_residual": solver_residual,
        "negative_curvature": solved.negative_curvature,
        "solver_iterations": solved.iterations,
        "hvp_count": hvp_count,
        "influence_mean": tf.reduce_mean(weights_influence),
        "influence_std": tf.math.reduce_std(weights_influence),
        "hypergradient_norm": tree_math.norm(gradients),
        "inner_gradient_norm": tree_math.norm(inner_gradient),
    }
    return HypergradientResult(gradients, direction, weights_influence, diagnostics)
