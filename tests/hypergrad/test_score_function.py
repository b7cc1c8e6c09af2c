"""The score-function gradient through `Simulator.log_prob` and `influence.surrogate_loss`.

Latents `c ~ N(mu, sigma^2 I)` in two dimensions with `mu` a simulator parameter, and a
known smooth `f(c) = sum(sin(c) + c^2 / 2)` playing the influence weights. The
gradient of the surrogate in `mu` is `-E[f(c) grad log p(c)]`, which must equal the
pathwise gradient `-E[f'(c)] = -(cos(mu) exp(-sigma^2 / 2) + mu)` within Monte Carlo
error (4 standard errors computed from the per-sample terms, with a power check).

The file also shows that the comparison catches the classic trap of scoring
reparameterised samples that are still on the tape (the score term of a location
family then cancels to zero), that `Simulator.log_prob` is immune to that trap, and
that `Simulator.sample_latents` returns samples with no gradient path to psi.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.hypergrad import influence
from autosimulate_tf.simulators import Simulator

tfd = tfp.distributions

MEAN = np.array([0.5, -1.0])
SIGMA = 0.8
NUM_SAMPLES = 20_000
SEED = (5, 6)


class GaussianLatentSimulator(Simulator):
    """`c ~ N(mean, SIGMA^2 I)` in float64, with `mean` the only psi component; renders `c` itself."""

    observation_shape = (2,)
    observation_dtype = np.float64
    render_with_tf_ops = True

    def __init__(self, mean=MEAN):
        super().__init__(name="gaussian_latent")
        self.add_parameter("mean", mean)

    def latent_distribution(self):
        loc = tf.cast(self.parameter("mean"), tf.float64)
        return tfd.Independent(tfd.Normal(loc, tf.constant(SIGMA, tf.float64)), reinterpreted_batch_ndims=1)

    def render(self, latent):
        return latent, tf.constant(0, tf.int32)


def f(latents):
    """`[n]` values `sum_d sin(c_d) + c_d^2 / 2`."""
    return tf.reduce_sum(tf.sin(latents) + 0.5 * tf.square(latents), axis=-1)


def f_prime(latents):
    """`[n, 2]` gradients `cos(c) + c`."""
    return np.cos(latents) + latents


def analytic_pathwise_gradient(mean=MEAN, sigma=SIGMA):
    """`-d E[f(c)] / d mu = -E[f'(c)] = -(cos(mu) exp(-sigma^2 / 2) + mu)`."""
    return -(np.cos(mean) * np.exp(-0.5 * sigma**2) + mean)


def score_terms(latents, values, mean=MEAN, sigma=SIGMA):
    """Per-sample terms `-(w_i - b_i) grad_mu log p(c_i)` of the leave-one-out score-function estimate."""
    baselines = (values.sum() - values) / (values.size - 1)
    return -(values - baselines)[:, None] * (latents - mean) / sigma**2


def standard_error(terms):
    return terms.std(axis=0, ddof=1) / np.sqrt(terms.shape[0])


def check_against_pathwise(estimate, standard_error, expected=None):
    """Raises AssertionError unless `estimate` is within 4 standard errors of the pathwise gradient.

    Args:
      estimate: `[2]` gradient estimate in `mu`.
      standard_error: `[2]` Monte Carlo standard error of a correct estimator at this sample size.
      expected: the pathwise gradient (the analytic one when None).
    """
    expected = analytic_pathwise_gradient() if expected is None else expected
    # Power: the gradient is far from zero at this sample size, so a vanishing estimate cannot pass.
    assert np.all(np.abs(expected) > 8 * standard_error), (expected, standard_error)
    assert np.all(np.abs(estimate - expected) < 4 * standard_error), (estimate, expected, standard_error)


def library_score_gradient(simulator, latents):
    """`d S / d psi` with `S` the library's surrogate, `w_i = f(c_i)` and leave-one-out baselines."""
    values = f(latents)
    baselines = influence.baseline_values(values)
    with tf.GradientTape() as tape:
        log_probs = simulator.log_prob(latents)
        surrogate = influence.surrogate_loss(log_probs, values, baselines)
    (gradient,) = tape.gradient(surrogate, simulator.psi_variables)
    return gradient.numpy(), values.numpy()


def test_library_score_function_gradient_matches_pathwise_gradient():
    simulator = GaussianLatentSimulator()
    latents = simulator.sample_latents(NUM_SAMPLES, seed=tf.constant(SEED))
    estimate, values = library_score_gradient(simulator, latents)
    terms = score_terms(latents.numpy(), values)
    # The library's gradient is the mean of the per-sample terms (float32 psi, hence the tolerance) ...
    np.testing.assert_allclose(estimate, terms.mean(axis=0), rtol=1e-4, atol=1e-6)
    # ... and that mean is within Monte Carlo error of the analytic pathwise gradient.
    check_against_pathwise(estimate, standard_error(terms))
    # A flipped sign convention would be ~2|expected| away; make that explicit.
    np.testing.assert_array_equal(np.sign(estimate), np.sign(analytic_pathwise_gradient()))


def test_reparameterised_pathwise_gradient_agrees_with_the_closed_form():
    """The pathwise Monte Carlo gradient, by autodiff and by the formula, matches the analytic value."""
    simulator = GaussianLatentSimulator()
    (mean_variable,) = simulator.psi_variables
    with tf.GradientTape() as tape:
        latents = simulator.latent_distribution().sample(NUM_SAMPLES, seed=tf.constant(SEED))
        loss = -tf.reduce_mean(f(latents))
    autodiff = tape.gradient(loss, mean_variable).numpy()
    per_sample = -f_prime(latents.numpy())
    np.testing.assert_allclose(autodiff, per_sample.mean(axis=0), rtol=1e-5)
    check_against_pathwise(autodiff, standard_error(per_sample))
    # The score-function estimate from the same samples agrees with the pathwise one as well.
    score_estimate, values = library_score_gradient(simulator, tf.stop_gradient(latents))
    combined_error = np.hypot(standard_error(per_sample), standard_error(score_terms(latents.numpy(), values)))
    check_against_pathwise(score_estimate, combined_error, expected=autodiff)


def broken_score_gradient(simulator, seed):
    """The trap: reparameterised samples drawn on the tape and scored without `stop_gradient`.

    For a location family `log p(mu + sigma eps | mu)` does not depend on `mu`, so the
    two paths into `mu` cancel and the "score-function" gradient is zero.
    """
    with tf.GradientTape() as tape:
        latents = simulator.latent_distribution().sample(NUM_SAMPLES, seed=tf.constant(seed))
        values = f(latents)
        baselines = influence.baseline_values(values)
        log_probs = simulator.latent_distribution().log_prob(latents)
        surrogate = influence.surrogate_loss(log_probs, values, baselines)
    (gradient,) = tape.gradient(surrogate, simulator.psi_variables)
    return gradient.numpy(), latents.numpy(), values.numpy()


def test_forgetting_stop_gradient_is_caught_by_the_comparison():
    simulator = GaussianLatentSimulator()
    broken, latents, values = broken_score_gradient(simulator, SEED)
    error = standard_error(score_terms(latents, values))
    # The mechanism: the score term cancels to (numerically) zero ...
    assert np.all(np.abs(broken) < 1e-3 * error), (broken, error)
    # ... which the same check that the correct estimator passes rejects.
    with pytest.raises(AssertionError):
        check_against_pathwise(broken, error)


def test_simulator_log_prob_is_immune_to_samples_left_on_the_tape():
    simulator = GaussianLatentSimulator()
    with tf.GradientTape() as tape:
        # Same trap as above, but scored through the library's `Simulator.log_prob`.
        latents = simulator.latent_distribution().sample(NUM_SAMPLES, seed=tf.constant(SEED))
        values = f(latents)
        baselines = influence.baseline_values(values)
        log_probs = simulator.log_prob(latents)
        surrogate = influence.surrogate_loss(log_probs, values, baselines)
    (on_tape,) = tape.gradient(surrogate, simulator.psi_variables)
    terms = score_terms(latents.numpy(), values.numpy())
    check_against_pathwise(on_tape.numpy(), standard_error(terms))
    # Identical to the gradient from stop-gradiented samples of the same seed.
    off_tape, _ = library_score_gradient(simulator, simulator.sample_latents(NUM_SAMPLES, seed=tf.constant(SEED)))
    np.testing.assert_allclose(on_tape.numpy(), off_tape, rtol=1e-6, atol=1e-8)


def test_sample_latents_have_no_gradient_path_to_psi():
    simulator = GaussianLatentSimulator()
    (mean_variable,) = simulator.psi_variables
    with tf.GradientTape(persistent=True) as tape:
        stopped = simulator.sample_latents(100, seed=tf.constant(SEED))
        # Control: the raw reparameterised sample does depend on psi (d sum(mu + sigma eps) / d mu = n).
        raw = simulator.latent_distribution().sample(100, seed=tf.constant(SEED))
    assert tape.gradient(stopped, mean_variable) is None
    np.testing.assert_allclose(tape.gradient(raw, mean_variable).numpy(), [100.0, 100.0])
    # Same draws: stop_gradient changes the gradient path, not the values.
    np.testing.assert_array_equal(stopped.numpy(), raw.numpy())
    assert stopped.shape == (100, 2)


SHIFT = np.array([0.4, -0.3])  # q = the latent distribution at MEAN + SHIFT (an older psi)


def importance_weighted_gradient(latents, values, importance_weights):
    """`d S / d mu` at `MEAN` for latents drawn under q, with the library's surrogate and weights."""
    simulator = GaussianLatentSimulator()
    baselines = influence.baseline_values(values)
    with tf.GradientTape() as tape:
        log_probs = simulator.log_prob(latents)
        surrogate = influence.surrogate_loss(log_probs, values, baselines, importance_weights)
    (gradient,) = tape.gradient(surrogate, simulator.psi_variables)
    return gradient.numpy()


def test_importance_weighted_surrogate_estimates_the_gradient_under_the_current_psi():
    """Reused renders: latents from q, weights p/q (self-normalised, as the trainer uses them)."""
    old = GaussianLatentSimulator(mean=MEAN + SHIFT)
    latents = old.sample_latents(NUM_SAMPLES, seed=tf.constant(SEED))
    log_ratio = GaussianLatentSimulator().log_prob(latents) - old.log_prob(latents)
    weights = NUM_SAMPLES * tf.nn.softmax(log_ratio)
    values = f(latents)
    estimate = importance_weighted_gradient(latents, values, weights)
    terms = weights.numpy()[:, None] * score_terms(latents.numpy(), values.numpy())
    np.testing.assert_allclose(estimate, terms.mean(axis=0), rtol=1e-4, atol=1e-6)
    check_against_pathwise(estimate, standard_error(terms))
    # Without the weights the same samples estimate the gradient at the *old* psi, which the check rejects.
    unweighted = importance_weighted_gradient(latents, values, None)
    with pytest.raises(AssertionError):
        check_against_pathwise(unweighted, standard_error(terms))
    old_gradient = analytic_pathwise_gradient(MEAN + SHIFT)
    assert np.all(np.abs(unweighted - old_gradient) < 5 * standard_error(terms)), (unweighted, old_gradient)


def test_render_cost_term_estimates_the_gradient_of_the_expected_cost():
    """`beta grad_mu E[cost]` with `cost(c) = |c|^2`: `E[cost] = |mu|^2 + 2 sigma^2`, gradient `2 beta mu`."""
    beta = 0.3
    simulator = GaussianLatentSimulator()
    latents = simulator.sample_latents(NUM_SAMPLES, seed=tf.constant(SEED))
    costs = tf.reduce_sum(tf.square(latents), axis=-1)
    with tf.GradientTape() as tape:
        surrogate = influence.cost_surrogate_loss(simulator.log_prob(latents), costs, beta)
    (estimate,) = tape.gradient(surrogate, simulator.psi_variables)
    # Per-sample terms beta (cost_i - b_i) grad_mu log p(c_i) give the Monte Carlo error.
    values = costs.numpy()
    baselines = (values.sum() - values) / (values.size - 1)
    terms = beta * (values - baselines)[:, None] * (latents.numpy() - MEAN) / SIGMA**2
    np.testing.assert_allclose(estimate.numpy(), terms.mean(axis=0), rtol=1e-4, atol=1e-6)
    check_against_pathwise(estimate.numpy(), standard_error(terms), expected=2 * beta * MEAN)


def test_render_cost_weight_needs_a_simulator_with_a_cost():
    from autosimulate_tf.errors import ConfigError
    from autosimulate_tf.hypergrad import HypergradientEstimator

    estimator = HypergradientEstimator(render_cost_weight=0.1)
    with pytest.raises(ConfigError, match=r"render_cost_weight=0\.1 needs a simulator with a render_cost"):
        estimator.check_simulator(GaussianLatentSimulator())

    class Costly(GaussianLatentSimulator):
        def render_cost(self, latents):
            return tf.reduce_sum(tf.square(latents), axis=-1)

    estimator.check_simulator(Costly())  # has a cost: accepted
    with pytest.raises(ConfigError, match="render_cost_weight=-1"):
        HypergradientEstimator(render_cost_weight=-1)
