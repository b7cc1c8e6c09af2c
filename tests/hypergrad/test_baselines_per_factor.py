"""Per-factor baselines, `HypergradientEstimator.baseline="per_factor"` (`influence.per_factor_baseline_values`).

A two-factor latent `a ~ N(mu_a, 0.1^2)`, `b ~ N(mu_b, 3^2)` (scores 30x apart in scale)
with a known influence `w = K (a - m)^2 + c b` whose expected gradient is analytic. Over
independent small batches (n = 20, where a baseline that saw its own sample would be
biased by O(1/n)) the per-factor estimate is unbiased: its mean matches the no-baseline
estimate's and the analytic gradient within Monte Carlo error, while a baseline that
includes sample i is caught (outside 4 standard errors). Its variance is lower than the
leave-one-out baseline's, since `w` grows with the narrow factor's score: the optimal
constant for that factor is `E[w s_a^2] / E[s_a^2] = 3.35`, not `E[w] = 1.35`, a variance
ratio of 1.44 as n grows (13.09 / 9.09 in the dominant component). On the Gaussian-mixture toy the
estimator's per-factor gradient equals the formula computed in numpy from its influence
weights.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.data import pipeline
from autosimulate_tf.data.real import xor_mixture_real_data
from autosimulate_tf.hypergrad import GeneratedData, HypergradientEstimator, TaskObjective, influence, solvers
from autosimulate_tf.simulators import GaussianMixtureSimulator, Simulator

tfd = tfp.distributions

MEANS = np.array([0.0, 1.0])  # mu_a, mu_b
SCALES = np.array([0.1, 3.0])
CENTRE = -0.05  # m in w = K (a - m)^2 + c b
CURVATURE = 100.0  # K
SLOPE = 0.1  # c
NUM_BATCHES = 400
BATCH_SIZE = 20


class TwoFactorSimulator(Simulator):
    """`a ~ N(mu_a, 0.1^2)`, `b ~ N(mu_b, 3^2)`, float64; psi = `(mu_a, mu_b)`."""

    render_with_tf_ops = True

    def __init__(self):
        super().__init__(name="two_factor")
        self.add_parameter("means", MEANS)

    def latent_distribution(self):
        means = tf.cast(self.parameter("means"), tf.float64)
        return tfd.JointDistributionNamed(
            {"a": tfd.Normal(means[0], SCALES[0]), "b": tfd.Normal(means[1], tf.constant(SCALES[1], tf.float64))}
        )

    def render(self, latent):
        return tf.stack([latent["a"], latent["b"]]), tf.constant(0, tf.int32)


def synthetic_influence(latents):
    return CURVATURE * tf.square(latents["a"] - CENTRE) + SLOPE * latents["b"]


# -d E[w] / d(mu_a, mu_b): the surrogate's gradient estimates the negative hypergradient of E[w].
ANALYTIC = -np.array([2 * CURVATURE * (MEANS[0] - CENTRE), SLOPE])


def factor_log_probs(simulator, latents):
    """`[n, 2]` `log p_a`, `log p_b` of stop-gradient-ed latents."""
    parts = simulator.latent_distribution().log_prob_parts(tf.nest.map_structure(tf.stop_gradient, latents))
    return tf.stack([parts["a"], parts["b"]], axis=1)


def baselines_including_own_sample(values, norms):
    """The biased variant: `b_j = sum_k w_k a_kj / sum_k a_kj` over all k, sample i included."""
    return tf.reduce_sum(values[:, None] * norms, 0) / tf.reduce_sum(norms, 0) + tf.zeros_like(norms)


def gradient(simulator, latents, baseline):
    """`d S / d psi` for one batch, with `baseline` one of the estimator's names or `"own_sample"`."""
    values = synthetic_influence(latents)
    psi = simulator.psi_variables
    if baseline in ("per_factor", "own_sample"):
        with tf.GradientTape() as score_tape:
            log_probs = factor_log_probs(simulator, latents)
        norms = influence.squared_score_norms(score_tape, log_probs, psi)
        if baseline == "per_factor":
            baselines = influence.per_factor_baseline_values(values, norms)
        else:
            baselines = baselines_including_own_sample(values, norms)
        with tf.GradientTape() as psi_tape:
            surrogate = influence.surrogate_loss(factor_log_probs(simulator, latents), values, baselines)
    else:
        with tf.GradientTape() as psi_tape:
            surrogate = influence.surrogate_loss(
                simulator.log_prob(latents), values, influence.baseline_values(values, baseline)
            )
    return psi_tape.gradient(surrogate, psi)[0]


@pytest.fixture(scope="module")
def two_factor_estimates():
    simulator = TwoFactorSimulator()
    names = ("per_factor", "none", "leave_one_out", "own_sample")
    compiled = {name: tf.function(lambda latents, name=name: gradient(simulator, latents, name)) for name in names}
    rows = {name: [] for name in names}
    for batch in range(NUM_BATCHES):
        latents = simulator.sample_latents(BATCH_SIZE, seed=tf.constant([batch, 23]))
        for name in names:
            rows[name].append(compiled[name](latents).numpy())
    return {name: np.array(values) for name, values in rows.items()}


def standard_error(estimates):
    return estimates.std(axis=0, ddof=1) / np.sqrt(estimates.shape[0])


def test_per_factor_baseline_is_unbiased(two_factor_estimates):
    per_factor, plain = two_factor_estimates["per_factor"], two_factor_estimates["none"]
    combined = np.hypot(standard_error(per_factor), standard_error(plain))
    # Power: the gradient is large against the Monte Carlo error in both components.
    assert np.all(np.abs(ANALYTIC) > 8 * combined), (ANALYTIC, combined)
    assert np.all(np.abs(per_factor.mean(axis=0) - plain.mean(axis=0)) < 4 * combined)
    assert np.all(np.abs(per_factor.mean(axis=0) - ANALYTIC) < 4 * standard_error(per_factor))


def test_a_baseline_that_sees_its_own_sample_is_caught(two_factor_estimates):
    own = two_factor_estimates["own_sample"]
    # The bias is O(1/n): measured 5.3 standard errors at n = 20 (a correct estimator stays within 4).
    assert np.abs(own.mean(axis=0)[0] - ANALYTIC[0]) > 4 * standard_error(own)[0]


def test_per_factor_baseline_has_lower_variance_than_leave_one_out(two_factor_estimates):
    per_factor = two_factor_estimates["per_factor"].var(axis=0, ddof=1).sum()
    leave_one_out = two_factor_estimates["leave_one_out"].var(axis=0, ddof=1).sum()
    # Measured ratio 1.35 at n = 20 (1.44 as n grows); 400 batches estimate each variance within ~7%.
    assert leave_one_out / per_factor >= 1.1, leave_one_out / per_factor


def test_per_factor_baseline_values_match_the_formula_and_ignore_their_own_sample():
    rng = np.random.default_rng(0)
    values = rng.normal(size=7)
    norms = rng.uniform(0.1, 3.0, size=(7, 3))
    norms[:, 2] = 0.0  # a part that does not depend on psi
    baselines = influence.per_factor_baseline_values(tf.constant(values), tf.constant(norms)).numpy()
    for i in range(7):
        others = np.arange(7) != i
        for j in range(2):
            expected = (values[others] * norms[others, j]).sum() / norms[others, j].sum()
            np.testing.assert_allclose(baselines[i, j], expected, rtol=1e-12)
        np.testing.assert_allclose(baselines[i, 2], values[others].mean(), rtol=1e-12)
    changed_values, changed_norms = values.copy(), norms.copy()
    changed_values[3], changed_norms[3] = 50.0, 9.0
    changed = influence.per_factor_baseline_values(tf.constant(changed_values), tf.constant(changed_norms)).numpy()
    np.testing.assert_allclose(changed[3], baselines[3], rtol=1e-12)  # sum-minus-own rounding only


def test_squared_score_norms_of_normal_factors():
    simulator = TwoFactorSimulator()
    latents = simulator.sample_latents(5, seed=tf.constant([1, 2]))
    with tf.GradientTape() as score_tape:
        log_probs = factor_log_probs(simulator, latents)
    norms = influence.squared_score_norms(score_tape, log_probs, simulator.psi_variables).numpy()
    scores = (np.stack([latents["a"].numpy(), latents["b"].numpy()], axis=1) - MEANS) / SCALES**2
    np.testing.assert_allclose(norms, scores**2, rtol=1e-5)


def test_estimator_per_factor_gradient_on_the_mixture_toy():
    simulator = GaussianMixtureSimulator()
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, kernel_initializer=keras.initializers.GlorotUniform(seed=3))]
    )
    objective = TaskObjective(model, "softmax_cross_entropy")
    real = xor_mixture_real_data(num_validation=100, num_test=1)
    latents = simulator.sample_latents(50, seed=tf.constant([4, 5]))
    rendered = pipeline.render_latents(simulator, latents)
    estimator = HypergradientEstimator(solver=solvers.identity, baseline="per_factor")
    result = estimator.estimate(
        objective,
        simulator,
        objective.current_weights(),
        GeneratedData(rendered.inputs, rendered.labels, latents),
        (real.validation_inputs, real.validation_labels),
    )
    # The component draw does not depend on psi; the point's score is (x - mean_k) / s^2 in row k.
    values = result.influence.numpy()
    components, points = latents["component"].numpy(), latents["point"].numpy()
    scores = np.zeros((50, 4, 2))
    scores[np.arange(50), components] = points - simulator.parameter("means").numpy()[components]
    norms = (scores**2).sum(axis=(1, 2))
    baselines = np.array([np.delete(values * norms, i).sum() / np.delete(norms, i).sum() for i in range(50)])
    expected = -((values - baselines)[:, None, None] * scores).mean(axis=0)
    np.testing.assert_allclose(result.gradients[0].numpy(), expected, rtol=1e-4, atol=1e-7)
