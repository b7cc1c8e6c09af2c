"""One AutoSimulate hypergradient: steps 3-6 of an outer iteration (DESIGN.md section 2).

    v = grad_theta L_val(theta)                      the single objective evaluation
    z ~= (C + lambda I)^-1 v                         a solver, curvature products only
    w_i = grad_theta l_i . z                         one forward-mode JVP
    dF/dpsi ~= grad_psi S,  S = -mean_i sg(w_i - b_i) log p(c_i | psi)

With `gradient_estimator="pathwise"` the latents the simulator declares location-scale in
psi are differentiated through the render instead (`hypergrad.pathwise`):
`S = -mean_i w_i(psi) - mean_i sg(w_i - b_i) log p(d_i | psi)`, `d` the other latents.

`HypergradientEstimator` bundles the choices that define the estimate (curvature,
damping, solver, baseline, gradient estimator, solver warm start) into one
gin-configurable object, checked when it is built; `estimate` takes the data.

#### References
[1]: Behl, Baydin, Gal, Torr, Vineet. AutoSimulate: (Quickly) Learning Synthetic
     Data Generation. ECCV 2020. arXiv:2008.08424.
"""

from typing import NamedTuple

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.errors import ConfigError, check
from autosimulate_tf.hypergrad import curvature as curvature_lib
from autosimulate_tf.hypergrad import influence, pathwise, solvers, tree_math
from autosimulate_tf.models import losses

VALIDATION_LOSS = "loss"
EXPECTED_ERROR = "expected_error"
VALIDATION_OBJECTIVES = (VALIDATION_LOSS, EXPECTED_ERROR)


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
    """Curvature, damping, solver, baseline and gradient estimator of the approximate hypergradient, checked once.

    In gin: `HypergradientEstimator.damping = 1.0`, `HypergradientEstimator.solver =
    @conjugate_gradient` with `conjugate_gradient.num_iterations = 10`,
    `HypergradientEstimator.gradient_estimator = 'pathwise'`.
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
        gradient_estimator: str = pathwise.SCORE_FUNCTION,
        report_snr: bool = False,
        validation_objective: str = VALIDATION_LOSS,
    ):
        """Args:
        curvature: `"gauss_newton"` or `"hessian"`.
        damping: lambda >= 0 added to the curvature.
        solver: a solver function from `autosimulate_tf.hypergrad.solvers` (knobs
          bound in gin), or any `solver(matvec, rhs, initial_guess) -> SolverResult`.
        baseline: `"leave_one_out"`, `"none"` or `"per_factor"` (one leave-one-out,
          least-squares baseline per named part of the latent distribution, from one
          Jacobian of the `[n, parts]` log-probabilities; see `hypergrad.influence`).
          Applies to the score-function term.
        warm_start_solver: start each solve from the previous `z`.
        report_residual: spend one extra curvature product to report the relative
          residual `|(C + lambda I) z - v| / |v|`.
        render_cost_weight: beta >= 0. With beta > 0 the outer objective is
          `L_val + beta E[cost(c)]`, with the simulator's per-sample `render_cost(latents)`
          (e.g. samples per pixel, a proxy for render seconds); its gradient is a
          score-function term (`influence.cost_surrogate_loss`). 0: off.
        gradient_estimator: `"score_function"` (the paper's) or `"pathwise"`: the
          simulator's `reparameterized_latents` are differentiated through its TF-op
          render (`hypergrad.pathwise`), the other latents keep the score term. The
          simulator is checked by `check_simulator`. Importance weights of reused
          renders are supported: both terms are weighted by `stop_gradient(r_i)`, since
          `E_q[r g(c)] = E_p[g(c)]` for the per-sample pathwise term `g` as for the score
          term. The render-cost term stays a score-function term over all latents. The
          pathwise term runs on one device over all n examples (not split over the
          objective's sharding).
        report_snr: add `psi_snr_median` and `psi_snr_min` to the diagnostics: over the
          psi components, `|mean_i g_i| / (std_i g_i / sqrt(n))` of the per-sample
          gradient contributions `g_i` (one Jacobian of the n per-sample surrogate terms,
          hence off by default).
        validation_objective: what psi should lower on the real validation data:
          `"loss"` (the paper's: the task loss `L_val`) or, for classifiers,
          `"expected_error"`: `mean_j (1 - p(y_j | x_j))`, a smooth stand-in for the
          validation error. Cross-entropy of an over-confident model is dominated by its
          few confidently wrong examples, and a psi change can lower it while accuracy
          falls; the expected error weights the borderline examples that decide accuracy.

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
        check(
            gradient_estimator in pathwise.GRADIENT_ESTIMATORS,
            f"HypergradientEstimator.gradient_estimator={gradient_estimator!r} is not one of "
            f"{pathwise.GRADIENT_ESTIMATORS}.",
        )
        check(
            validation_objective in VALIDATION_OBJECTIVES,
            f"HypergradientEstimator.validation_objective={validation_objective!r} is not one of "
            f"{VALIDATION_OBJECTIVES}.",
        )
        _probe_solver(solver)
        self.curvature = curvature
        self.damping = float(damping)
        self.solver = solver
        self.baseline = baseline
        self.warm_start_solver = bool(warm_start_solver)
        self.report_residual = bool(report_residual)
        self.render_cost_weight = float(render_cost_weight)
        self.gradient_estimator = gradient_estimator
        self.report_snr = bool(report_snr)
        self.validation_objective = validation_objective

    def check_simulator(self, simulator) -> None:
        """Raises `ConfigError` when `simulator` cannot serve these settings, naming the setting.

        The render-cost term needs a `render_cost`; the pathwise estimator needs a TF-op
        render and location-scale `reparameterized_latents` (`pathwise.check_simulator`).
        """
        if self.gradient_estimator == pathwise.PATHWISE:
            pathwise.check_simulator(simulator)
        if self.render_cost_weight:
            check(
                getattr(simulator, "render_cost", None) is not None,
                f"HypergradientEstimator.render_cost_weight={self.render_cost_weight} needs a simulator with a "
                f"render_cost(latents); {type(simulator).__name__} has none.",
            )

    def check_loss(self, loss: str) -> None:
        """Raises `ConfigError` when the validation objective does not fit the task loss, naming the setting."""
        if self.validation_objective == EXPECTED_ERROR:
            check(
                loss == losses.SOFTMAX_CROSS_ENTROPY,
                f"HypergradientEstimator.validation_objective={EXPECTED_ERROR!r} needs a classifier, but the task "
                f"loss is {loss!r}; use validation_objective={VALIDATION_LOSS!r}.",
            )

    def estimate(self, objective, simulator, theta, generated: GeneratedData, validation, initial_guess=None):
        """Approximate hypergradient of the validation objective in the simulator parameters.

        Args:
          objective: `TaskObjective` (model, loss, weight decay).
          simulator: the `Simulator` whose `log_prob` scores the latents.
          theta: the warm-started model weights (list of tensors).
          generated: the `GeneratedData` `D_t`.
          validation: `(inputs, labels)` of the real validation data.
          initial_guess: the previous `z`, used when `warm_start_solver` (else ignored).

        Returns:
          A `HypergradientResult`. Diagnostics: `validation_loss` (the validation
          objective's value: the mean loss or the expected error),
          `validation_gradient_norm`, `z_norm`, `solver_residual` (-1 when not
          computed), `negative_curvature`, `solver_iterations`, `hvp_count`,
          `influence_mean`, `influence_std`, `hypergradient_norm`, `inner_gradient_norm`;
          `render_cost_mean` with the render-cost term, `psi_snr_median` and
          `psi_snr_min` with `report_snr`.

        Raises:
          ConfigError: for the pathwise estimator on a simulator without a TF-op render
            or reparameterised latents.
          tf.errors.InvalidArgumentError: for the pathwise estimator, when rendering the
            latents again does not reproduce `generated`.
        """
        theta = list(theta)
        validation_fn = (
            objective.validation_expected_error
            if self.validation_objective == EXPECTED_ERROR
            else objective.validation_loss
        )
        validation_loss, validation_gradient = objective.mean_value_and_gradient(validation_fn, theta, *validation)
        matvec = curvature_lib.make_damped_matvec(
            objective, theta, generated.inputs, generated.labels, self.curvature, self.damping
        )
        solved = self.solver(matvec, validation_gradient, initial_guess if self.warm_start_solver else None)
        z = solved.solution
        validation_gradient_norm = tree_math.norm(validation_gradient)
        solver_residual, hvp_count = self._residual(matvec, z, validation_gradient, validation_gradient_norm)
        influence_values = influence.influence_weights(objective, theta, generated.inputs, generated.labels, z)
        gradients, psi_diagnostics = self._psi_gradients(objective, theta, z, simulator, generated, influence_values)
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
            **psi_diagnostics,
        }
        return HypergradientResult(gradients, z, influence_values, diagnostics)

    def _residual(self, matvec, z, validation_gradient, validation_gradient_norm):
        """`(relative residual or -1, curvature products spent on it)`."""
        if not self.report_residual:
            return tf.constant(-1.0, validation_gradient_norm.dtype), 0
        residual = tree_math.subtract(matvec(z), validation_gradient)
        return tree_math.norm(residual) / (validation_gradient_norm + 1e-30), 1

    def _psi_gradients(self, objective, theta, z, simulator, generated: GeneratedData, influence_values):
        """`(grad_psi S, diagnostics)`; zeros for psi components the latents do not depend on."""
        psi_variables = simulator.psi_variables
        baselines = self._baselines(simulator, generated, influence_values)
        # Persistent only when the per-sample Jacobian is wanted as well as the gradient.
        with tf.GradientTape(persistent=self.report_snr) as psi_tape:
            terms, diagnostics = self._surrogate_terms(
                objective, theta, z, simulator, generated, influence_values, baselines
            )
            surrogate = tf.reduce_mean(terms)
        gradients = psi_tape.gradient(surrogate, psi_variables)
        gradients = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(gradients, psi_variables, strict=True)
        ]
        if self.report_snr:
            jacobians = psi_tape.jacobian(terms, psi_variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            diagnostics.update(_signal_to_noise(jacobians))
        return gradients, diagnostics

    def _surrogate_terms(self, objective, theta, z, simulator, generated, influence_values, baselines):
        """`[n]` per-sample terms whose mean is the surrogate `S` (plus the render-cost term), and diagnostics."""
        weights = generated.importance_weights
        latents, reparameterized = self._differentiable_latents(simulator, generated.latents)
        log_probs = self._score_log_probs(simulator, latents, reparameterized)
        terms = influence.surrogate_terms(log_probs, influence_values, baselines, weights)
        if reparameterized:
            path = tf.cast(pathwise.pathwise_influence(objective, theta, z, simulator, latents, generated), terms.dtype)
            if weights is not None:
                # stop_gradient drops dr/dpsi: E_q[r g] = E_p[g] holds with the weights of the draws held fixed.
                path = tf.stop_gradient(tf.cast(weights, terms.dtype)) * path
            terms -= path
        diagnostics = {}
        if self.render_cost_weight:
            full_log_probs = simulator.log_prob(generated.latents)
            costs = tf.stop_gradient(tf.cast(simulator.render_cost(generated.latents), full_log_probs.dtype))
            cost_terms = influence.cost_surrogate_terms(full_log_probs, costs, self.render_cost_weight, weights)
            terms += tf.cast(cost_terms, terms.dtype)
            diagnostics["render_cost_mean"] = tf.reduce_mean(costs)
        return terms, diagnostics

    def _differentiable_latents(self, simulator, latents) -> tuple:
        """`(latents, reparameterised names)`: pathwise latents, or the stored ones without a gradient path."""
        if self.gradient_estimator == pathwise.PATHWISE:
            check(
                bool(simulator.reparameterized_latents) and simulator.render_with_tf_ops,
                f"HypergradientEstimator.gradient_estimator='pathwise' needs a TF-op render and "
                f"reparameterized_latents; {type(simulator).__name__} fails HypergradientEstimator.check_simulator.",
            )
            return pathwise.reparameterized_latents(simulator, latents)
        # stop_gradient drops the sampling path: the score term differentiates log p only.
        return tf.nest.map_structure(tf.stop_gradient, latents), ()

    def _score_log_probs(self, simulator, latents, reparameterized) -> tf.Tensor:
        """What the score term differentiates: `[n]` log-probabilities, or `[n, J]` per part (per-factor baselines).

        Reparameterised parts are left out: their dependence on psi is the pathwise term's.
        """
        if not reparameterized and self.baseline != influence.PER_FACTOR:
            return simulator.log_prob(latents)
        parts = _factor_log_probs(simulator, latents, skip=reparameterized)
        return parts if self.baseline == influence.PER_FACTOR else tf.reduce_sum(parts, axis=1)

    def _baselines(self, simulator, generated, influence_values) -> tf.Tensor:
        """`[n]` baselines, or `[n, J]` per-part ones (from one Jacobian of the per-part log-probabilities)."""
        if self.baseline != influence.PER_FACTOR:
            return influence.baseline_values(influence_values, self.baseline)
        with tf.GradientTape() as score_tape:
            latents, reparameterized = self._differentiable_latents(simulator, generated.latents)
            log_probs = self._score_log_probs(simulator, latents, reparameterized)
        norms = influence.squared_score_norms(score_tape, log_probs, simulator.psi_variables)
        return influence.per_factor_baseline_values(influence_values, norms)


def _factor_log_probs(simulator, latents, skip=()) -> tf.Tensor:
    """`[n, J]` per-part `log p_j(c_i | psi)` of the latent distribution, parts in `skip` left out.

    A distribution that is not a joint one is a single part.
    """
    distribution = simulator.latent_distribution()
    if not hasattr(distribution, "log_prob_parts"):
        return distribution.log_prob(latents)[:, None]
    parts = distribution.log_prob_parts(latents)
    parts = parts if isinstance(parts, dict) else dict(enumerate(parts))
    kept = [parts[name] for name in sorted(parts, key=str) if name not in skip]
    if not kept:
        count = tf.shape(tf.nest.flatten(latents)[0])[0]
        return tf.zeros(tf.stack([count, 0]), tf.nest.flatten(parts)[0].dtype)
    return tf.stack(kept, axis=1)


def _signal_to_noise(jacobians) -> dict:
    """Median and minimum over psi components of `|mean_i g_i| / (std_i g_i / sqrt(n))`.

    `g_i` is sample i's contribution to the gradient (row i of the Jacobian of the
    per-sample surrogate terms); a component the samples do not move scores 0.
    """
    rows = [tf.reshape(tf.convert_to_tensor(j), tf.stack([tf.shape(j)[0], -1])) for j in jacobians]
    per_sample = tf.concat([tf.cast(r, rows[0].dtype) for r in rows], axis=1)
    count = tf.cast(tf.shape(per_sample)[0], per_sample.dtype)
    standard_error = tf.math.reduce_std(per_sample, axis=0) / tf.sqrt(count)
    snr = tf.math.divide_no_nan(tf.abs(tf.reduce_mean(per_sample, axis=0)), standard_error)
    return {
        "psi_snr_median": tfp.stats.percentile(snr, 50.0, interpolation="midpoint"),
        "psi_snr_min": tf.reduce_min(snr),
    }


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
