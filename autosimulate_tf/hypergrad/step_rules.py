"""Step rules: how the hypergradient becomes a psi step, plainly or as a natural-gradient trust-region step.

`PlainStep` (the default) hands the hypergradient `g` to the outer Keras optimizer unchanged,
so every psi coordinate moves by the optimizer's learning rate, whatever it parametrises: a
logit, a log-scale or the mean of a factor whose standard deviation is 0.1 or 10.

`NaturalGradientStep` measures the step in distribution space instead. From the latents of
the outer iteration, with `q_i` their normalised importance weights (1 / n without reuse):

    s_i  = grad_psi log p(c_i | psi)                 per-sample scores, [n, P]
    F    = sum_i q_i (s_i - s_bar)(s_i - s_bar)^T    empirical Fisher information (s_bar = sum_i q_i s_i)
    d    = (F + damping diag(F) + isotropic_damping (tr F / P) I)^-1 g     natural direction (a solve)
    eta  = min(learning_rate, sqrt(2 max_kl / d^T F d))
    psi <- psi - eta d,   KL(p(.|psi) || p(.|psi')) ~= 0.5 eta^2 d^T F d <= max_kl

Damping proportional to the diagonal (Levenberg-Marquardt) keeps the step invariant to
rescaling any psi coordinate (`psi_j = a u_j` gives the same step in distribution space),
which damping by a multiple of the identity does not. The small isotropic term is there for
what the drawn latents cannot see: a style variant of probability 1e-6 is never drawn, so
the estimate of its Fisher is ~1e-12 where the truth is ~1e-6, and a natural step scaled by
the diagonal alone can then move its logit by ~1e6, free of any KL the latents can measure. The isotropic term damps exactly the coordinates whose estimated
information is far below the average, and leaves the others (and the invariance) nearly
untouched. The system is solved after scaling by its diagonal (unit diagonal, well
conditioned), by Cholesky. A coordinate whose scores do not vary over the drawn latents
carries no information (its score-function gradient is zero too) and is not moved
(`empirical_fisher` says why the scores are centred).

The quadratic KL is a local model, and the empirical Fisher a noisy one. So, as in TRPO's
line search [2], the step is then checked against a Monte Carlo KL on the same latents
(`sampled_kl_divergence`, which sees a step that makes the drawn latents unlikely) and
halved while that exceeds `KL_TOLERANCE * max_kl`.

The scores are computed in forward mode: one Jacobian-vector product per psi coordinate,
vectorised over the P coordinates, O(nP). Reverse mode (`GradientTape.jacobian` over the n
log-probabilities) is O(n^2): on the digits simulator (P = 52) 6 s against 0.05 s for n = 5000.

The natural step reaches psi through the outer optimizer, which must then be plain SGD (no
momentum, clipping, weight decay or moving average): the rule hands it `(eta / lr) d`, so
SGD's `psi -= lr * gradient` is exactly the step above. The optimizer's learning rate (or
schedule) is the cap `learning_rate`, and its step counter and checkpoint behave as with any
other rule. Both rules are stateless.

#### References
[1]: Amari. Natural gradient works efficiently in learning. Neural Computation 10(2), 1998.
[2]: Schulman, Levine, Moritz, Jordan, Abbeel. Trust region policy optimization. ICML 2015.
[3]: Martens. Deep learning via Hessian-free optimization. ICML 2010 (Levenberg-Marquardt damping).
"""

import math
from typing import NamedTuple

import gin
import keras
import tensorflow as tf

from autosimulate_tf.errors import check
from autosimulate_tf.hypergrad import tree_math

# Diagnostics of the natural step, by name (added to the trainer's per-iteration metrics).
PSI_STEP_KL = "psi_step_kl"  # predicted KL(p_old || p_new) of the step, 0.5 eta^2 d^T F d
PSI_STEP_SIZE = "psi_step_size"  # Euclidean length eta |d| of the step in unconstrained psi
PSI_STEP_KL_BOUND_ACTIVE = "psi_step_kl_bound_active"  # 1 when max_kl, not the learning rate, set eta
PSI_STEP_SAMPLED_KL = "psi_step_sampled_kl"  # Monte Carlo KL of the step taken, on the iteration's latents
PSI_STEP_BACKTRACKS = "psi_step_backtracks"  # halvings of eta until the sampled KL was within the tolerance

# The sampled KL of a step may exceed max_kl by this factor before the step is halved (the
# tolerance of TRPO's line search [2]); after MAX_BACKTRACKS halvings psi is not moved.
KL_TOLERANCE = 1.5
MAX_BACKTRACKS = 10
# A score column whose variance is at most this fraction of its mean square is constant up to
# float64 rounding (a category no latent drew): it carries no information.
CONSTANT_SCORE_TOLERANCE = 1e-20


class StepResult(NamedTuple):
    """Output of a step rule's `transform`.

    Attributes:
      gradients: what the outer optimizer applies, one tensor per `simulator.psi_variables`.
      diagnostics: dict of scalar tensors for logging (empty for `PlainStep`).
    """

    gradients: list
    diagnostics: dict


@gin.configurable
class PlainStep:
    """The hypergradient goes to the outer optimizer unchanged (any Keras optimizer)."""

    def check_optimizer(self, optimizer) -> None:
        """Accepts every outer optimizer."""
        del optimizer

    def transform(self, gradients, simulator, latents, learning_rate, importance_weights=None) -> StepResult:
        """Returns `gradients` as they are, without diagnostics."""
        del simulator, latents, learning_rate, importance_weights
        return StepResult(list(gradients), {})


@gin.configurable
class NaturalGradientStep:
    """A Fisher-preconditioned psi step whose predicted KL is at most `max_kl` (module docstring).

    In gin, with plain SGD as the outer optimizer (its learning rate caps eta):

        AutoSimulateTrainer.step_rule = @NaturalGradientStep()
        NaturalGradientStep.max_kl = 0.05
        AutoSimulateTrainer.outer_optimizer = @outer/keras.optimizers.SGD
        outer/keras.optimizers.SGD.learning_rate = 1.0
    """

    def __init__(self, max_kl: float = 0.05, damping: float = 1e-3, isotropic_damping: float = 1e-4):
        """Args:
        max_kl: > 0, the bound on the predicted KL divergence between p(c | psi) before and
          after one step (nats).
        damping: > 0, added to the Fisher as `damping * diag(F)`.
        isotropic_damping: >= 0, added to the Fisher as `isotropic_damping * trace(F) / P`
          times the identity (0: the step is exactly invariant to rescaling a coordinate,
          and coordinates the latents rarely inform can take huge steps).

        Raises:
          ConfigError: naming the bad setting.
        """
        check(math.isfinite(max_kl) and max_kl > 0, f"NaturalGradientStep.max_kl={max_kl} must be a number > 0.")
        check(math.isfinite(damping) and damping > 0, f"NaturalGradientStep.damping={damping} must be a number > 0.")
        check(
            math.isfinite(isotropic_damping) and isotropic_damping >= 0,
            f"NaturalGradientStep.isotropic_damping={isotropic_damping} must be a number >= 0.",
        )
        self.max_kl = float(max_kl)
        self.damping = float(damping)
        self.isotropic_damping = float(isotropic_damping)

    def check_optimizer(self, optimizer) -> None:
        """Raises `ConfigError` unless `optimizer` applies `psi -= learning_rate * gradient` and nothing else.

        A Keras learning-rate schedule is fine: it only changes the cap from step to step.
        """
        name = type(optimizer).__name__
        check(
            isinstance(optimizer, keras.optimizers.SGD),
            "AutoSimulateTrainer.step_rule = @NaturalGradientStep() sizes the psi step itself and needs plain SGD: "
            f"AutoSimulateTrainer.outer_optimizer = @outer/keras.optimizers.SGD (got {name}).",
        )
        extras = {
            "momentum": optimizer.momentum,
            "nesterov": optimizer.nesterov,
            "weight_decay": optimizer.weight_decay,
            "clipnorm": optimizer.clipnorm,
            "clipvalue": optimizer.clipvalue,
            "global_clipnorm": optimizer.global_clipnorm,
            "use_ema": optimizer.use_ema,
            "gradient_accumulation_steps": optimizer.gradient_accumulation_steps,
            "loss_scale_factor": optimizer.loss_scale_factor,
        }
        changed = sorted(key for key, value in extras.items() if value)
        check(
            not changed,
            f"AutoSimulateTrainer.step_rule = @NaturalGradientStep() needs plain SGD, but the outer optimizer sets "
            f"{', '.join(f'outer/keras.optimizers.SGD.{key}={extras[key]}' for key in changed)}: these change the "
            "step and break the KL bound.",
        )

    def transform(self, gradients, simulator, latents, learning_rate, importance_weights=None) -> StepResult:
        """The SGD gradients `(eta / learning_rate) d` of the natural trust-region step.

        Args:
          gradients: the hypergradient `g`, one tensor per `simulator.psi_variables`.
          simulator: the `Simulator` whose `log_prob` scores `latents`.
          latents: the latents of the outer iteration, a structure of `[n, ...]` tensors.
          learning_rate: the SGD learning rate of this step (the cap of eta).
          importance_weights: optional `[n]` weights `p(c_i | psi) / q(c_i)` of latents drawn
            under another distribution; they weight the Fisher and the sampled KL.

        Returns:
          A `StepResult`; diagnostics `psi_step_kl` (predicted), `psi_step_sampled_kl`,
          `psi_step_size`, `psi_step_kl_bound_active` and `psi_step_backtracks` (module
          constants `PSI_STEP_*`). Non-finite scores give non-finite gradients, which the
          trainer's finiteness check turns into a skipped update.
        """
        scores = score_matrix(simulator, latents)
        finite = tree_math.all_finite([scores])
        # Zeros keep the solve well defined; the NaN below still marks the step as unusable.
        fisher = empirical_fisher(tf.where(finite, scores, tf.zeros_like(scores)), importance_weights)
        gradient = tf.cast(tree_math.flatten(gradients), tf.float64)
        direction = natural_direction(fisher, gradient, self.damping, self.isotropic_damping)
        direction = tf.where(finite, direction, tf.constant(float("nan"), tf.float64))
        # d^T F d >= 0; rounding must not turn a zero step into the square root of a negative number.
        curvature = tf.maximum(tf.tensordot(direction, tf.linalg.matvec(fisher, direction), 1), 0.0)
        learning_rate = tf.cast(learning_rate, tf.float64)
        kl_step = tf.sqrt(2.0 * self.max_kl / curvature)  # inf for a zero step: the learning rate decides
        step_length = tf.minimum(learning_rate, kl_step)
        shrink, sampled_kl, backtracks = self._backtrack(
            simulator, latents, importance_weights, step_length * direction
        )
        step_length *= shrink
        sgd_gradient = tf.cast(step_length / learning_rate * direction, gradients[0].dtype)
        diagnostics = {
            PSI_STEP_KL: 0.5 * step_length**2 * curvature,
            PSI_STEP_SAMPLED_KL: sampled_kl,
            PSI_STEP_SIZE: step_length * tf.norm(direction),
            PSI_STEP_KL_BOUND_ACTIVE: tf.cast(kl_step < learning_rate, tf.float64),
            PSI_STEP_BACKTRACKS: tf.cast(backtracks, tf.float64),
        }
        return StepResult(tree_math.unflatten(sgd_gradient, gradients), diagnostics)

    def _backtrack(self, simulator, latents, importance_weights, descent):
        """Halves the step `psi - descent` while its sampled KL exceeds `KL_TOLERANCE * max_kl`.

        Returns `(factor applied to the step, sampled KL of the accepted step, halvings)`; the
        factor is 0 (no step) when `MAX_BACKTRACKS` halvings do not suffice.
        """
        variables = simulator.psi_variables
        old_log_probs = simulator.log_prob(latents)

        def sampled_kl(factor):
            moved = tree_math.unflatten(tf.cast(-factor * descent, variables[0].dtype), variables)
            with simulator.temporary_psi(unconstrained=[v + delta for v, delta in zip(variables, moved, strict=True)]):
                new_log_probs = simulator.log_prob(latents)
            return sampled_kl_divergence(old_log_probs, new_log_probs, importance_weights)

        def too_far(factor, kl, halvings):
            # A NaN KL (an overflowing step) counts as too far.
            return tf.logical_and(halvings < MAX_BACKTRACKS, tf.logical_not(kl <= KL_TOLERANCE * self.max_kl))

        def halve(factor, kl, halvings):
            return factor / 2.0, sampled_kl(factor / 2.0), halvings + 1

        one = tf.constant(1.0, tf.float64)
        factor, kl, halvings = tf.while_loop(too_far, halve, (one, sampled_kl(one), tf.constant(0)))
        accepted = kl <= KL_TOLERANCE * self.max_kl
        return tf.where(accepted, factor, 0.0), tf.where(accepted, kl, 0.0), halvings


def sampled_kl_divergence(old_log_probs, new_log_probs, importance_weights=None) -> tf.Tensor:
    """Monte Carlo `KL(p_old || p_new)` from latents drawn under p_old (or under q, with weights p_old / q).

    The estimator `mean_i [r_i - 1 - log r_i]`, `r_i = p_new(c_i) / p_old(c_i)`, is unbiased
    (`E[r] = 1`) and every term is >= 0, so a step that makes the drawn latents much less
    (or more) likely gives a large estimate; `expm1` keeps small log-ratios exact. Float64.
    """
    log_ratio = tf.cast(new_log_probs, tf.float64) - tf.cast(old_log_probs, tf.float64)
    terms = tf.math.expm1(log_ratio) - log_ratio
    return tf.reduce_sum(_normalised_weights(importance_weights, tf.shape(log_ratio)[0]) * terms)


def _normalised_weights(importance_weights, num_samples) -> tf.Tensor:
    """The `[n]` float64 weights `q_i / sum_j q_j` (uniform without importance weights)."""
    if importance_weights is None:
        weights = tf.ones([num_samples], tf.float64)
    else:
        weights = tf.cast(importance_weights, tf.float64)
    return weights / tf.reduce_sum(weights)


def score_matrix(simulator, latents) -> tf.Tensor:
    """Per-sample scores `grad_psi log p(c_i | psi)` as an `[n, P]` matrix, P = total psi size.

    Column k is the forward-mode derivative of the n log-probabilities along psi coordinate
    k (in `tree_math.flatten` order of `simulator.psi_variables`); the P products run
    vectorised (`tf.vectorized_map`). Works eagerly and inside a `tf.function`, for any n.
    """
    variables = simulator.psi_variables
    sizes = [variable.shape.num_elements() for variable in variables]
    total = sum(sizes)

    def column(index):
        basis = tf.one_hot(index, total, dtype=variables[0].dtype)
        tangents = tree_math.unflatten(basis, variables)
        with tf.autodiff.ForwardAccumulator(variables, tangents) as accumulator:
            log_probs = simulator.log_prob(latents)
        return accumulator.jvp(log_probs, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    return tf.transpose(tf.vectorized_map(column, tf.range(total)))


def empirical_fisher(scores, importance_weights=None) -> tf.Tensor:
    """The weighted covariance of the scores, `sum_i q_i (s_i - s_bar)(s_i - s_bar)^T`, float64 `[P, P]`.

    `q` are the normalised importance weights (uniform without them), `s_bar = sum_i q_i s_i`.
    The scores have mean zero in expectation, so centring changes no expectation, but it
    removes the constant part of a coordinate's scores. A category no latent drew has the
    constant score `-p_j`: the uncentred estimate would give it the Fisher `p_j^2` instead of
    `p_j (1 - p_j)`, a natural step `1 / p_j` times too long that the same estimate calls
    free; centred, its variance is zero and the coordinate is left out of the step.
    """
    scores = tf.cast(scores, tf.float64)
    weights = _normalised_weights(importance_weights, tf.shape(scores)[0])
    centred = scores - tf.reduce_sum(weights[:, None] * scores, axis=0)
    # A constant column centres to rounding noise, not to zero; zero it so that it is left out exactly.
    variance = tf.reduce_sum(weights[:, None] * centred**2, axis=0)
    constant = variance <= CONSTANT_SCORE_TOLERANCE * tf.reduce_sum(weights[:, None] * scores**2, axis=0)
    centred = tf.where(constant[None, :], tf.zeros_like(centred), centred)
    return tf.matmul(centred * weights[:, None], centred, transpose_a=True)


def natural_direction(fisher, gradient, damping: float, isotropic_damping: float = 0.0) -> tf.Tensor:
    """`(F + damping diag(F) + isotropic_damping (trace(F) / P) I)^-1 g` (module docstring).

    Solved by Cholesky after scaling the damped matrix to unit diagonal. Coordinates with a
    zero Fisher diagonal get a zero entry.

    Args:
      fisher: `[P, P]` symmetric positive semi-definite matrix.
      gradient: `[P]` vector.
      damping: > 0, relative to the diagonal.
      isotropic_damping: >= 0, relative to the mean of the diagonal.

    Returns:
      The `[P]` direction `d`, in the dtype of `fisher`.
    """
    diagonal = tf.linalg.diag_part(fisher)
    informative = diagonal > 0.0
    isotropic = tree_math.as_dtype(isotropic_damping, fisher.dtype) * tf.reduce_mean(diagonal)
    damped_diagonal = (1.0 + tree_math.as_dtype(damping, fisher.dtype)) * diagonal + isotropic
    # 1 / sqrt of the damped diagonal, and 0 for an uninformative coordinate (which leaves it out of the solve).
    inverse_scale = tf.where(informative, tf.math.rsqrt(tf.where(informative, damped_diagonal, 1.0)), 0.0)
    scaled = fisher * inverse_scale[:, None] * inverse_scale[None, :]
    # The damping terms, scaled, fill the diagonal up to 1 (and left-out coordinates get a 1): the matrix is
    # positive definite with eigenvalues >= damping / (1 + damping), so Cholesky holds.
    unit_diagonal = 1.0 - tf.linalg.diag_part(scaled)
    damped = scaled + tf.linalg.diag(unit_diagonal)
    rhs = tf.cast(gradient, fisher.dtype) * inverse_scale
    solved = tf.linalg.cholesky_solve(tf.linalg.cholesky(damped), rhs[:, None])[:, 0]
    return inverse_scale * solved
