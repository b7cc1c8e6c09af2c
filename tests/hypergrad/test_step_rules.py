"""Step rules against closed forms: scores, Fisher information, the natural direction and the KL bound.

Monte Carlo tolerances come from the sample size n: the empirical Fisher `mean_i s_i s_i^T`
has relative standard error sqrt(2 / n) for a Gaussian score (`var(z^2) = 2`), and at most
that for the bounded categorical scores; tests allow 4 standard errors.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.hypergrad import step_rules
from autosimulate_tf.hypergrad.step_rules import NaturalGradientStep, PlainStep
from autosimulate_tf.simulators import Simulator

tfd = tfp.distributions

SIGMA = 2.0
LOGITS = (0.5, -0.3, 0.2, -1.0)
NUM_SAMPLES = 20_000
SEED = (7, 11)


class NormalMeanSimulator(Simulator):
    """x ~ Normal(mean_scale * location, SIGMA); psi = location (so the Fisher is mean_scale^2 / SIGMA^2)."""

    def __init__(self, location: float, mean_scale: float = 1.0):
        super().__init__(name="normal_mean")
        self.mean_scale = mean_scale
        self.add_parameter("location", location)

    def latent_distribution(self):
        mean = self.mean_scale * tf.cast(self.parameter("location"), tf.float64)
        return tfd.JointDistributionNamed({"x": tfd.Normal(mean, tf.constant(SIGMA, tf.float64))})


class CategoricalSimulator(Simulator):
    """c ~ Categorical(logits); psi = the logits (Fisher diag(p) - p p^T, singular along the all-ones vector)."""

    def __init__(self, logits=LOGITS):
        super().__init__(name="categorical")
        self.add_parameter("logits", np.asarray(logits, np.float32))

    def latent_distribution(self):
        return tfd.JointDistributionNamed({"c": tfd.Categorical(logits=tf.cast(self.parameter("logits"), tf.float64))})


class MixedSimulator(Simulator):
    """A class c ~ Categorical(logits) and x ~ Normal(mean_scale * location, exp(log_scale)), independent."""

    def __init__(self, mean_scale: float = 1.0, location: float = 0.5):
        super().__init__(name="mixed")
        self.mean_scale = mean_scale
        self.add_parameter("logits", np.array([0.3, -0.2, 0.1], np.float32))
        self.add_parameter("location", location)
        self.add_parameter("log_scale", math.log(0.8))

    def parts(self):
        """The two independent factors, in float64."""
        logits = tf.cast(self.parameter("logits"), tf.float64)
        mean = self.mean_scale * tf.cast(self.parameter("location"), tf.float64)
        scale = tf.exp(tf.cast(self.parameter("log_scale"), tf.float64))
        return tfd.Categorical(logits=logits), tfd.Normal(mean, scale)

    def latent_distribution(self):
        categorical, normal = self.parts()
        return tfd.JointDistributionNamed({"c": categorical, "x": normal})


class VariantSimulator(Simulator):
    """A digit of two, then a variant of two given the digit; digit 1's second variant has probability ~8e-7."""

    def __init__(self):
        super().__init__(name="variants")
        self.add_parameter("variant_logits", np.array([[0.0, 0.0], [0.0, -14.0]], np.float32))

    def latent_distribution(self):
        logits = tf.cast(self.parameter("variant_logits"), tf.float64)
        return tfd.JointDistributionNamed(
            {
                "digit": tfd.Categorical(logits=tf.zeros(2, tf.float64)),
                "variant": lambda digit: tfd.Categorical(logits=tf.gather(logits, digit)),
            }
        )


def exact_kl(before, after) -> float:
    """KL(p_before || p_after) of two `MixedSimulator.parts()`, summed over the independent factors."""
    return float(sum(tfd.kl_divergence(p, q) for p, q in zip(before, after, strict=True)))


def sample(simulator, num_samples=NUM_SAMPLES):
    return simulator.sample_latents(num_samples, seed=tf.constant(SEED))


def score_function_gradient(simulator, latents):
    """`-mean_i f(c_i) grad log p(c_i)` for a fixed f: a hypergradient as the estimator forms it."""
    f = tf.cast(tf.equal(latents["c"], 1), tf.float64) - 0.3 * latents["x"] ** 2
    with tf.GradientTape() as tape:
        surrogate = -tf.reduce_mean(f * simulator.log_prob(latents))
    return tape.gradient(surrogate, simulator.psi_variables)


def natural_step(simulator, gradients, latents, learning_rate, max_kl, isotropic_damping=1e-4):
    """One natural step applied by plain SGD, as the trainer applies it; returns the diagnostics as floats."""
    rule = NaturalGradientStep(max_kl=max_kl, isotropic_damping=isotropic_damping)
    optimizer = keras.optimizers.SGD(learning_rate)
    rule.check_optimizer(optimizer)
    step = rule.transform(gradients, simulator, latents, optimizer.learning_rate)
    optimizer.apply_gradients(zip(step.gradients, simulator.psi_variables, strict=True))
    return {name: float(value) for name, value in step.diagnostics.items()}


def test_scores_of_a_normal_mean_match_the_closed_form():
    simulator = NormalMeanSimulator(location=1.5)
    latents = sample(simulator, 100)
    scores = step_rules.score_matrix(simulator, latents)
    np.testing.assert_allclose(scores[:, 0], (latents["x"].numpy() - 1.5) / SIGMA**2, rtol=1e-6)


def test_forward_mode_scores_equal_the_reverse_mode_jacobian_for_any_batch_size():
    simulator = MixedSimulator()
    latents = sample(simulator, 50)
    with tf.GradientTape() as tape:
        log_probs = simulator.log_prob(latents)
    jacobian = tape.jacobian(log_probs, simulator.psi_variables)
    expected = np.concatenate([np.reshape(j, [50, -1]) for j in jacobian], axis=1)
    np.testing.assert_allclose(step_rules.score_matrix(simulator, latents), expected, rtol=1e-6, atol=1e-9)
    # Traced once with an unknown number of latents, as the trainer traces it under reuse.
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec([None], t.dtype), latents)
    traced = tf.function(lambda latents: step_rules.score_matrix(simulator, latents), input_signature=[spec])
    np.testing.assert_allclose(traced(latents), expected, rtol=1e-6, atol=1e-9)


def test_natural_direction_of_a_normal_mean_is_sigma_squared_times_the_gradient():
    """Fisher 1 / sigma^2: d = sigma^2 g / (1 + damping) (diagonal damping of a 1x1 Fisher)."""
    simulator = NormalMeanSimulator(location=1.5)
    scores = step_rules.score_matrix(simulator, sample(simulator))
    fisher = step_rules.empirical_fisher(scores)
    damping, gradient = 1e-3, tf.constant([0.7], tf.float64)
    direction = step_rules.natural_direction(fisher, gradient, damping)
    np.testing.assert_allclose(direction, SIGMA**2 * 0.7 / (1 + damping), rtol=4 * math.sqrt(2 / NUM_SAMPLES))


def test_natural_direction_of_categorical_logits_matches_the_exact_damped_fisher():
    simulator = CategoricalSimulator()
    p = tf.nn.softmax(tf.constant(LOGITS, tf.float64)).numpy()
    exact = np.diag(p) - np.outer(p, p)
    scores = step_rules.score_matrix(simulator, sample(simulator))
    empirical = step_rules.empirical_fisher(scores).numpy()
    # Every score e_c - p sums to zero, so the empirical Fisher is singular along the all-ones vector too.
    np.testing.assert_allclose(empirical @ np.ones(4), 0.0, atol=1e-12)
    np.testing.assert_allclose(empirical, exact, atol=4 * math.sqrt(2 / NUM_SAMPLES) * exact.diagonal().max())
    # A score-function gradient lies in the span of the scores, orthogonal to the all-ones vector.
    ones = np.ones(4) / 2.0
    gradient = np.array([0.3, -0.5, 0.1, 0.4])
    gradient -= ones * (ones @ gradient)
    damping = 1e-3
    direction = step_rules.natural_direction(tf.constant(empirical), gradient, damping).numpy()
    exact_direction = np.linalg.solve(exact + damping * np.diag(exact.diagonal()), gradient)
    # The Fisher error is amplified at most by the condition number on the subspace orthogonal to the ones.
    eigenvalues = np.linalg.eigvalsh(exact)[1:]
    condition = eigenvalues[-1] / eigenvalues[0]
    relative_error = np.linalg.norm(direction - exact_direction) / np.linalg.norm(exact_direction)
    assert relative_error < 4 * condition * math.sqrt(2 / NUM_SAMPLES), relative_error
    # In that subspace the damped solve is the pseudo-inverse solution, up to O(damping * condition).
    projected = exact_direction - ones * (ones @ exact_direction)
    np.testing.assert_allclose(projected, np.linalg.pinv(exact) @ gradient, rtol=10 * damping * condition)


def test_a_coordinate_without_fisher_information_is_not_moved():
    fisher = tf.constant([[2.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.5, 0.0, 1.0]], tf.float64)
    direction = step_rules.natural_direction(fisher, tf.constant([1.0, 3.0, -1.0], tf.float64), 0.1).numpy()
    assert direction[1] == 0.0
    informative = fisher.numpy()[np.ix_([0, 2], [0, 2])]
    damped = informative + 0.1 * np.diag(informative.diagonal())
    np.testing.assert_allclose(direction[[0, 2]], np.linalg.solve(damped, [1.0, -1.0]), rtol=1e-12)


def test_the_fisher_estimate_is_the_importance_weighted_covariance_of_the_scores():
    scores = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]])
    weights = np.array([0.5, 2.0, 1.5])
    mean = weights @ scores / 4.0
    expected = sum(w * np.outer(s - mean, s - mean) for w, s in zip(weights, scores, strict=True)) / 4.0
    np.testing.assert_allclose(step_rules.empirical_fisher(tf.constant(scores), tf.constant(weights)), expected)


def test_a_category_no_latent_drew_is_left_out_of_the_step():
    """Its score is the constant -p_j: centred, it has no Fisher information, so it is not moved."""
    simulator = CategoricalSimulator((0.0, 0.5, -0.5, -14.0))  # p_3 ~ 6e-7: not among 2000 draws
    latents = sample(simulator, 2000)
    assert not np.any(latents["c"].numpy() == 3)
    fisher = step_rules.empirical_fisher(step_rules.score_matrix(simulator, latents)).numpy()
    assert np.all(fisher[3] == 0.0) and np.all(fisher[:, 3] == 0.0)
    step = NaturalGradientStep(max_kl=0.05).transform([tf.constant([0.1, -0.2, 0.4, -0.3])], simulator, latents, 1.0)
    assert step.gradients[0].numpy()[3] == 0.0
    assert np.all(np.isfinite(step.gradients[0].numpy()))


def test_the_sampled_kl_matches_the_exact_kl():
    simulator = MixedSimulator()
    latents = sample(simulator)
    before_parts, before = simulator.parts(), simulator.log_prob(latents)
    simulator.psi_variables[0].assign_add([0.2, -0.1, 0.0])
    simulator.psi_variables[1].assign_add(0.15)
    kl = float(step_rules.sampled_kl_divergence(before, simulator.log_prob(latents)))
    # Each term is about (log r)^2 / 2 for a small step, with relative spread about sqrt(2).
    assert kl == pytest.approx(exact_kl(before_parts, simulator.parts()), rel=4 * math.sqrt(2 / NUM_SAMPLES))


def test_a_step_the_quadratic_model_underestimates_is_halved_until_its_sampled_kl_is_within_tolerance():
    simulator = CategoricalSimulator((2.0, 0.0, 0.0, -2.0))
    before = tfd.Categorical(logits=tf.constant((2.0, 0.0, 0.0, -2.0), tf.float64))
    latents = sample(simulator, 4000)
    max_kl = 1.0
    diagnostics = natural_step(simulator, [tf.constant([0.1, 0.0, 0.0, -0.1])], latents, 100.0, max_kl)
    assert diagnostics[step_rules.PSI_STEP_BACKTRACKS] >= 1
    assert diagnostics[step_rules.PSI_STEP_KL] == pytest.approx(
        max_kl / 4 ** diagnostics[step_rules.PSI_STEP_BACKTRACKS]
    )
    assert diagnostics[step_rules.PSI_STEP_SAMPLED_KL] <= step_rules.KL_TOLERANCE * max_kl
    after = tfd.Categorical(logits=tf.cast(simulator.parameter("logits"), tf.float64))
    exact = float(tfd.kl_divergence(before, after))
    assert exact <= step_rules.KL_TOLERANCE * max_kl


def test_a_step_with_a_small_max_kl_moves_the_distribution_by_max_kl():
    simulator = MixedSimulator()
    latents = sample(simulator)
    gradients = score_function_gradient(simulator, latents)
    before = simulator.parts()
    max_kl = 1e-3
    diagnostics = natural_step(simulator, gradients, latents, learning_rate=100.0, max_kl=max_kl)
    assert diagnostics[step_rules.PSI_STEP_KL_BOUND_ACTIVE] == 1.0
    assert diagnostics[step_rules.PSI_STEP_BACKTRACKS] == 0.0
    assert diagnostics[step_rules.PSI_STEP_KL] == pytest.approx(max_kl, rel=1e-6)
    # Monte Carlo error of d^T F d, plus the third-order term of the KL (relative size ~ the step length).
    tolerance = 4 * math.sqrt(2 / NUM_SAMPLES) + math.sqrt(2 * max_kl)
    kl = exact_kl(before, simulator.parts())
    assert max_kl * (1 - tolerance) <= kl <= max_kl * (1 + tolerance), kl


def test_the_learning_rate_caps_the_natural_step_below_the_kl_bound():
    simulator = MixedSimulator()
    latents = sample(simulator)
    gradients = score_function_gradient(simulator, latents)
    start = [v.numpy().copy() for v in simulator.psi_variables]
    rule = NaturalGradientStep(max_kl=0.5)
    uncapped = rule.transform(gradients, simulator, latents, 1.0).gradients  # the direction d itself
    diagnostics = natural_step(simulator, gradients, latents, learning_rate=0.01, max_kl=0.5)
    assert diagnostics[step_rules.PSI_STEP_KL_BOUND_ACTIVE] == 0.0
    assert diagnostics[step_rules.PSI_STEP_KL] < 0.5
    for variable, value, direction in zip(simulator.psi_variables, start, uncapped, strict=True):
        np.testing.assert_allclose(variable.numpy(), value - 0.01 * direction.numpy(), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    ("learning_rate", "isotropic_damping", "rtol"),
    [(0.05, 0.0, 1e-5), (100.0, 0.0, 1e-5), (100.0, 1e-4, 1e-3)],
    ids=["learning_rate_sets_the_step", "max_kl_sets_the_step", "with_isotropic_damping"],
)
def test_rescaling_a_psi_coordinate_leaves_the_natural_step_unchanged_in_distribution_space(
    learning_rate, isotropic_damping, rtol
):
    """The mean parametrised as 10 u instead of u: the same new distribution (the plain step moves 100x more).

    Exact (float32 rounding) with diagonal damping alone; the isotropic term, which is relative to the
    mean Fisher diagonal (100x larger for the mean when it is 10 u), changes the step by ~1e-4.
    """
    plain_changes, natural_parts = [], []
    latents = sample(MixedSimulator(), 2000)  # both parametrisations start at this distribution
    for mean_scale in (1.0, 10.0):
        for rule in ("plain", "natural"):
            simulator = MixedSimulator(mean_scale=mean_scale, location=0.5 / mean_scale)
            gradients = score_function_gradient(simulator, latents)
            if rule == "natural":
                natural_step(simulator, gradients, latents, learning_rate, 0.01, isotropic_damping)
                natural_parts.append(simulator.parts())
            else:
                keras.optimizers.SGD(0.05).apply_gradients(zip(gradients, simulator.psi_variables, strict=True))
                plain_changes.append(float(simulator.parts()[1].loc) - 0.5)
    unit, scaled = natural_parts
    np.testing.assert_allclose(unit[0].probs_parameter(), scaled[0].probs_parameter(), rtol=rtol)
    np.testing.assert_allclose(unit[1].loc, scaled[1].loc, rtol=rtol)
    np.testing.assert_allclose(unit[1].scale, scaled[1].scale, rtol=rtol)
    assert float(unit[1].loc) != pytest.approx(0.5)  # the mean did move
    assert plain_changes[1] == pytest.approx(100.0 * plain_changes[0], rel=1e-4)


def test_isotropic_damping_keeps_a_variant_the_latents_barely_inform_from_a_huge_step():
    """Its estimated Fisher is ~q^2 = 7e-13 (the truth: ~q = 8e-7); scaled by the diagonal alone its logit moves ~1e5."""
    simulator = VariantSimulator()
    latents = sample(simulator, 256)
    assert not np.any((latents["variant"].numpy() == 1) & (latents["digit"].numpy() == 1))
    noise = tf.random.stateless_normal([256], [1, 2], dtype=tf.float64)
    f = tf.cast(latents["variant"], tf.float64) + 0.3 * tf.cast(latents["digit"], tf.float64) + noise
    with tf.GradientTape() as tape:
        surrogate = -tf.reduce_mean(f * simulator.log_prob(latents))
    gradients = [tf.convert_to_tensor(tape.gradient(surrogate, simulator.psi_variables)[0])]
    moves = {}
    for isotropic_damping in (0.0, 1e-4):
        rule = NaturalGradientStep(max_kl=0.05, isotropic_damping=isotropic_damping)
        moves[isotropic_damping] = np.abs(rule.transform(gradients, simulator, latents, 1.0).gradients[0].numpy())
    assert moves[0.0][1].max() > 1e4
    assert moves[1e-4][1].max() < 0.1
    assert moves[1e-4][0].max() > 0.1  # the informed digit's variants still move


def test_non_finite_scores_give_non_finite_step_gradients():
    simulator = NormalMeanSimulator(location=0.0)
    latents = {"x": tf.constant([0.5, np.inf, -1.0], tf.float64)}
    step = NaturalGradientStep().transform([tf.constant(0.1)], simulator, latents, 1.0)
    assert not np.isfinite(step.gradients[0].numpy())


def test_plain_step_passes_the_gradients_through_for_any_optimizer():
    PlainStep().check_optimizer(keras.optimizers.Adam(0.1))
    gradients = [tf.constant([1.0, 2.0]), tf.constant(3.0)]
    step = PlainStep().transform(gradients, None, None, 0.1)
    assert step.diagnostics == {}
    for passed, given in zip(step.gradients, gradients, strict=True):
        assert passed is given


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_kl": 0.0}, r"NaturalGradientStep\.max_kl=0\.0 must be a number > 0"),
        ({"max_kl": -0.1}, r"NaturalGradientStep\.max_kl=-0\.1"),
        ({"max_kl": float("nan")}, r"NaturalGradientStep\.max_kl=nan"),
        ({"max_kl": float("inf")}, r"NaturalGradientStep\.max_kl=inf"),
        ({"damping": 0.0}, r"NaturalGradientStep\.damping=0\.0 must be a number > 0"),
        ({"isotropic_damping": -1e-4}, r"NaturalGradientStep\.isotropic_damping=-0\.0001 must be a number >= 0"),
        ({"isotropic_damping": float("nan")}, r"NaturalGradientStep\.isotropic_damping=nan"),
    ],
)
def test_bad_settings_raise_config_errors_naming_them(settings, message):
    with pytest.raises(ConfigError, match=message):
        NaturalGradientStep(**settings)


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (lambda: keras.optimizers.Adam(0.1), r"needs plain SGD: AutoSimulateTrainer\.outer_optimizer = .*got Adam"),
        (lambda: keras.optimizers.SGD(0.1, momentum=0.9), r"outer/keras\.optimizers\.SGD\.momentum=0\.9"),
        (lambda: keras.optimizers.SGD(0.1, momentum=0.5, nesterov=True), r"SGD\.momentum=0\.5, .*SGD\.nesterov=True"),
        (lambda: keras.optimizers.SGD(0.1, clipnorm=1.0), r"SGD\.clipnorm=1\.0"),
        (lambda: keras.optimizers.SGD(0.1, weight_decay=1e-4), r"SGD\.weight_decay=0\.0001"),
    ],
)
def test_the_natural_step_rejects_an_optimizer_that_changes_its_step(optimizer, message):
    with pytest.raises(ConfigError, match=message):
        NaturalGradientStep().check_optimizer(optimizer())
