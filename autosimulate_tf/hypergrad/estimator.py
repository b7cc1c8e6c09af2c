"""One AutoSimulate hypergradient: steps 3-6 of an outer iteration (DESIGN.md section 2).

    v = grad_theta L_val(theta)                      the single objective evaluation
    z ~= (C + lambda I)^-1 v                         a solver, curvature products only
    w_i = grad_theta l_i . z                         one forward-mode JVP
    dF/dpsi ~= grad_psi S,  S = -mean_i sg(w_i - b_i) log p(c_i | psi)

`HypergradientEstimator` bundles the choices that define the estimate (curvature,
damping, solver, baseline, solver warm start) into one gin-configurable object, checked
when it is built; `estimate` takes the data.

#### References
[1]: Behl, Baydin, Gal, Torr, Vineet. AutoSimulate: (Quickly) Learning Synthetic
     Data Generation. ECCV 2020. arXiv:2008.08424.
"""

from typing import NamedTuple

import gin
import tensorflow as tf

from autosimulate_tf.errors import ConfigError, check
from autosimulate_tf.hypergrad import curvature as curvature_lib
from autosimulate_tf.hypergrad import influence, solvers, tree_math


class GeneratedData(NamedTuple):
    """The generated training set `D_t` and the latents that produced it.

    Attributes:
      inputs: rendered inputs `[n, ...]`.
      labels: rendered labels `[n, ...]`.
      latents: the latents `c_i` (same order), a structure of `[n, ...]` tensors.
      importance_weights: optional `[n]` weights `p(c_i | psi) / q(c_i)` for latents
        drawn under another distribution q (reused renders); None: all drawn under psi.
    """

    inputs: tf.Tensor
    labels: tf.Tensor
    latents: object
    importance_weights: tf.Tensor | None = None


class HypergradientResult(NamedTuple):
    """Output of `HypergradientEstimator.estimate`.

    Attributes:
      gradients: estimate of dF/dpsi, one tensor per `simulator.psi_variables`.
      z: `(C + lambda I)^-1 v`, shaped like the model weights (warm start for the next solve).
      influence: `[n]` per-example influence weights `w_i`.
      diagnostics: dict of scalar tensors for logging (see `HypergradientEstimator.estimate`).
    """

    gradients: list
    z: list
    influence: tf.Tensor
    diagnostics: dict


@gin.configurable
class HypergradientEstimator:
    """Curvature, damping, solver and baseline of the approximate hypergradient, checked once.

    In gin: `HypergradientEstimator.damping = 1.0`, `HypergradientEstimator.solver =
    @conjugate_gradient` with `conjugate_gradient.num_iterations = 10`.
    """

    def __init__(
        self,
        curvature: str = curvature_lib.GAUSS_NEWTON,
        damping: float = 0.1,
        solver=solvers.conjugate_gradient,
        baseline: str = influence.LEAVE_ONE_OUT,
        warm_start_solver: bool = True,
        report_residual: bool = True,
        render_cost_weight: float = 0.0,
    ):
        """Args:
        curvature: `"gauss_newton"` or `"hessian"`.
        damping: lambda >= 0 added to the curvature.
        solver: a solver function from `autosimulate_tf.hypergrad.solvers` (knobs
          bound in gin), or any `solver(matvec, rhs, initial_guess) -> SolverResult`.
        baseline: `"leave_one_out"` or `"none"`.
        warm_start_solver: start each solve from the previous `z`.
        report_residual: spend one extra curvature product to report the relative
          residual `|(C + lambda I) z - v| / |v|`.
        render_cost_weight: beta >= 0. With beta > 0 the outer objective is
          `L_val + beta E[cost(c)]`, with the simulator's per-sample `render_cost(latents)`
          (e.g. samples per pixel, a proxy for render seconds); its gradient is a
          score-function term (`influence.cost_surrogate_loss`). 0: off.

        Raises:
          ConfigError: naming the bad setting; a solver's own knobs are checked here
            too, by one solve of a 1-dimensional system.
        """
        check(
            curvature in curvature_lib.CURVATURES,
            f"HypergradientEstimator.curvature={curvature!r} is not one of {curvature_lib.CURVATURES}.",
        )
        check(damping >= 0, f"HypergradientEstimator.damping={damping} must be >= 0.")
        check(
            baseline in influence.BASELINES,
            f"HypergradientEstimator.baseline={baseline!r} is not one of {influence.BASELINES}.",
        )
        check(callable(solver), f"HypergradientEstimator.solver={solver!r} is not a solver function.")
        check(
            render_cost_weight >= 0,
            f"HypergradientEstimator.render_cost_weight={render_cost_weight} must be >= 0 (0: off).",
        )
        _probe_solver(solver)
        self.curvature = curvature
        self.damping = float(damping)
        self.solver = solver
        self.baseline = baseline
        self.warm_start_solver = bool(warm_start_solver)
        self.report_residual = bool(report_residual)
        self.render_cost_weight = float(render_cost_weight)

    def check_simulator(self, simulator) -> None:
        """Raises `ConfigError` when the render-cost term is on but the simulator reports no cost."""
        if self.render_cost_weight:
            check(
                getattr(simulator, "render_cost", None) is not None,
                f"HypergradientEstimator.render_cost_weight={self.render_cost_weight} needs a simulator with a "
                f"render_cost(latents); {type(simulator).__name__} has none.",
            )

    def estimate(self, objective, simulator, theta, generated: GeneratedData, validation, initial_guess=None):
        """Approximate hypergradient of the validation loss in the simulator parameters.

        Args:
          objective: `TaskObjective` (model, loss, weight decay).
          simulator: the `Simulator` whose `log_prob` scores the latents.
          theta: the warm-started model weights (list of tensors).
          generated: the `GeneratedData` `D_t`.
          validation: `(inputs, labels)` of the real validation data.
          initial_guess: the previous `z`, used when `warm_start_solver` (else ignored).

        Returns:
          A `HypergradientResult`. Diagnostics: `validation_loss`,
          `validation_gradient_norm`, `z_norm`, `solver_residual` (-1 when not
          computed), `negative_curvature`, `solver_iterations`, `hvp_count`,
          `influence_mean`, `influence_std`, `hypergradient_norm`, `inner_gradient_norm`.
        """
        theta = list(theta)
        validation_loss, validation_gradient = objective.mean_value_and_gradient(
            objective.validation_loss, theta, *validation
        )
        matvec = curvature_lib.make_damped_matvec(
            objective, theta, generated.inputs, generated.labels, self.curvature, self.damping
        )
        solved = self.solver(matvec, validation_gradient, initial_guess if self.warm_start_solver else None)
        z = solved.solution
        validation_gradient_norm = tree_math.norm(validation_gradient)
        solver_residual, hvp_count = self._residual(matvec, z, validation_gradient, validation_gradient_norm)
        influence_values = influence.influence_weights(objective, theta, generated.inputs, generated.labels, z)
        gradients, cost_diagnostics = self._psi_gradients(simulator, generated, influence_values)
        _, inner_gradient = objective.mean_value_and_gradient(
            objective.train_loss, theta, generated.inputs, generated.labels
        )
        diagnostics = {
            "validation_loss": validation_loss,
            "validation_gradient_norm": validation_gradient_norm,
            "z_norm": tree_math.norm(z),
            "solver_residual": solver_residual,
            "negative_curvature": solved.negative_curvature,
            "solver_iterations": solved.iterations,
            "hvp_count": solved.hvp_count + hvp_count,
            "influence_mean": tf.reduce_mean(influence_values),
            "influence_std": tf.math.reduce_std(influence_values),
            "hypergradient_norm": tree_math.norm(gradients),
            "inner_gradient_norm": tree_math.norm(inner_gradient),
            **cost_diagnostics,
        }
        return HypergradientResult(gradients, z, influence_values, diagnostics)

    def _residual(self, matvec, z, validation_gradient, validation_gradient_norm):
        """`(relative residual or -1, curvature products spent on it)`."""
        if not self.report_residual:
            return tf.constant(-1.0, validation_gradient_norm.dtype), 0
        residual = tree_math.subtract(matvec(z), validation_gradient)
        return tree_math.norm(residual) / (validation_gradient_norm + 1e-30), 1

    def _psi_gradients(self, simulator, generated: GeneratedData, influence_values) -> tuple[list, dict]:
        """`grad_psi S` (plus the render-cost term), zeros for psi components the latents do not depend on."""
        baselines = influence.baseline_values(influence_values, self.baseline)
        psi_variables = simulator.psi_variables
        diagnostics = {}
        with tf.GradientTape() as psi_tape:
            log_probs = simulator.log_prob(generated.latents)
            surrogate = influence.surrogate_loss(log_probs, influence_values, baselines, generated.importance_weights)
            if self.render_cost_weight:
                costs = tf.stop_gradient(tf.cast(simulator.render_cost(generated.latents), log_probs.dtype))
                surrogate += influence.cost_surrogate_loss(
                    log_probs, costs, self.render_cost_weight, generated.importance_weights
                )
                diagnostics["render_cost_mean"] = tf.reduce_mean(costs)
        gradients = psi_tape.gradient(surrogate, psi_variables)
        gradients = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(gradients, psi_variables, strict=True)
        ]
        return gradients, diagnostics


def _probe_solver(solver) -> None:
    """Runs `solver` once on the system `2 z = 1`, so its bound knobs are checked at build time.

    Solvers check their knobs when called; without this a bad `conjugate_gradient.num_iterations`
    would surface only inside the first outer iteration, after the first renders.
    """
    try:
        result = solver(lambda vector: [2.0 * v for v in vector], [tf.ones([1])], None)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(f"HypergradientEstimator.solver: {error}") from error
    check(
        isinstance(result, solvers.SolverResult),
        f"HypergradientEstimator.solver={solver!r} must return a SolverResult, got {type(result).__name__}.",
    )
