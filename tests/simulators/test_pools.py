"""`CategoricalPoolsSimulator` and the `xor_pools` pool builder.

Covers that psi (the pool probabilities, behind a SoftmaxCentered bijector) stays on the
simplex whatever value the unconstrained variable takes, that rendering looks up
`(pool, index)` in the pool arrays, that sampled pool frequencies match psi (binomial,
4 standard errors), that each pool kind of `xor_pools` is what it claims to be (compared
with a clean pool built from the same seed and with the clean rule sign(x0 * x1) > 0 ->
class 0), and the `ConfigError`s for unknown kinds and bad initial probabilities (which are
refused, never renormalised).
"""

import math
import re

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators import CategoricalPoolsSimulator, xor_pools

SEED = tf.constant([1, 2])
PROBABILITIES = np.array([0.1, 0.2, 0.3, 0.15, 0.25], np.float32)
# The axes classifier on the XOR mixture errs with probability 1 - Phi(2)^2 - (1 - Phi(2))^2 ~= 4.45%.
PHI_2 = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))
BAYES_ERROR = 1.0 - PHI_2**2 - (1.0 - PHI_2) ** 2
NUM_POOL_SAMPLES = 20_000


def rule_labels(inputs):
    """The clean XOR rule: class 0 when x0 * x1 > 0, else class 1."""
    return np.where(inputs[:, 0] * inputs[:, 1] > 0, 0, 1)


def assert_fraction_close(observed_fraction, expected_fraction, num_trials):
    """Asserts a binomial fraction within 4 standard errors of its expectation."""
    standard_error = np.sqrt(expected_fraction * (1.0 - expected_fraction) / num_trials)
    assert abs(observed_fraction - expected_fraction) < 4 * standard_error, (observed_fraction, expected_fraction)


def single_pool(kind, seed=11, **kwargs):
    """`(inputs [M, 2], labels [M])` of a one-pool `xor_pools` call."""
    _, inputs, labels = xor_pools(kinds=(kind,), pool_size=NUM_POOL_SAMPLES, seed=seed, **kwargs)
    return inputs[0], labels[0]


def test_default_pools_have_the_documented_layout():
    names, inputs, labels = xor_pools()
    assert names == ["0_clean", "1_label_noise", "2_shifted", "3_clean", "4_flipped"]
    assert inputs.shape == (5, 1000, 2) and inputs.dtype == np.float32
    assert labels.shape == (5, 1000) and labels.dtype == np.int32
    assert set(np.unique(labels)) == {0, 1}
    assert not np.array_equal(inputs[0], inputs[3]), "the two clean pools must be independent draws"
    again = xor_pools()
    np.testing.assert_array_equal(again[1], inputs)
    np.testing.assert_array_equal(again[2], labels)


def test_simulator_exposes_the_pool_geometry():
    simulator = CategoricalPoolsSimulator(pools=xor_pools(pool_size=30))
    assert simulator.num_pools == 5
    assert simulator.pool_size == 30
    assert simulator.observation_shape == (2,)
    assert simulator.pool_names[2] == "2_shifted"
    assert simulator.parameter_names == ["pool_probabilities"]
    assert simulator.psi_variables[0].shape == (4,), "SoftmaxCentered: K - 1 unconstrained numbers"


def test_initial_probabilities_default_to_uniform_and_are_used_as_given():
    pools = xor_pools(pool_size=10)
    uniform = CategoricalPoolsSimulator(pools=pools).constrained_parameters()["pool_probabilities"]
    np.testing.assert_allclose(uniform, np.full(5, 0.2), atol=1e-6)
    given = CategoricalPoolsSimulator(pools=pools, initial_probabilities=PROBABILITIES)
    np.testing.assert_allclose(given.constrained_parameters()["pool_probabilities"], PROBABILITIES, atol=1e-6)


def test_unnormalised_initial_probabilities_are_refused_not_renormalised():
    with pytest.raises(ConfigError, match=r"initial_probabilities=.*sum to 10 \(divide by the sum"):
        CategoricalPoolsSimulator(pools=xor_pools(pool_size=10), initial_probabilities=10 * PROBABILITIES)


def test_pool_probabilities_stay_on_the_simplex_for_any_unconstrained_value():
    simulator = CategoricalPoolsSimulator(pools=xor_pools(pool_size=10))
    (variable,) = simulator.psi_variables
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 10.0):
        for _ in range(5):
            variable.assign(rng.normal(0.0, scale, size=4).astype(np.float32))
            probabilities = simulator.parameter("pool_probabilities").numpy()
            assert probabilities.shape == (5,)
            assert np.all(probabilities > 0), probabilities
            assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "unconstrained", [[1e30, -1e30, 0.0, 3e38], [-3e38, -3e38, -3e38, -3e38], [88.0, -88.0, 1e4, -1e4]]
)
def test_huge_unconstrained_values_still_give_a_probability_vector(unconstrained):
    # float32 underflows exp(-huge) to exactly 0, so strict positivity cannot hold here; the vector must still be a
    # finite probability vector and log_prob of what it samples must be finite.
    simulator = CategoricalPoolsSimulator(pools=xor_pools(pool_size=10))
    simulator.psi_variables[0].assign(np.array(unconstrained, np.float32))
    probabilities = simulator.parameter("pool_probabilities").numpy()
    assert np.all(np.isfinite(probabilities)) and np.all(probabilities >= 0), probabilities
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    latents = simulator.sample_latents(50, seed=SEED)
    assert np.all(probabilities[latents["pool"].numpy()] > 0), "sampled a pool of probability zero"
    assert np.all(np.isfinite(simulator.log_prob(latents).numpy()))


def test_set_constrained_parameters_round_trip():
    simulator = CategoricalPoolsSimulator(pools=xor_pools(pool_size=10))
    simulator.set_constrained_parameters({"pool_probabilities": PROBABILITIES})
    np.testing.assert_allclose(simulator.constrained_parameters()["pool_probabilities"], PROBABILITIES, atol=1e-6)


def test_log_prob_is_log_psi_of_the_pool_plus_log_uniform_index():
    simulator = CategoricalPoolsSimulator(pools=xor_pools(pool_size=40), initial_probabilities=PROBABILITIES)
    latents = simulator.sample_latents(100, seed=SEED)
    expected = np.log(PROBABILITIES[latents["pool"].numpy()]) - np.log(40.0)
    np.testing.assert_allclose(simulator.log_prob(latents).numpy(), expected, rtol=1e-5)


def test_render_looks_up_the_example_at_pool_and_index():
    _, inputs, labels = pools = xor_pools(pool_size=50)
    simulator = CategoricalPoolsSimulator(pools=pools)
    latents = simulator.sample_latents(300, seed=SEED)
    pool, index = latents["pool"].numpy(), latents["index"].numpy()
    assert len(np.unique(pool)) == 5 and np.all((index >= 0) & (index < 50))
    observations, rendered_labels = tf.vectorized_map(simulator.render, latents)
    np.testing.assert_array_equal(observations.numpy(), inputs[pool, index])
    np.testing.assert_array_equal(rendered_labels.numpy(), labels[pool, index])
    observation, label = simulator.render({"pool": tf.constant(4), "index": tf.constant(17)})
    np.testing.assert_array_equal(observation.numpy(), inputs[4, 17])
    assert int(label) == labels[4, 17]


def test_sampled_pool_frequencies_match_psi():
    num_samples = 20_000
    simulator = CategoricalPoolsSimulator(pools=xor_pools(pool_size=100), initial_probabilities=PROBABILITIES)
    latents = simulator.sample_latents(num_samples, seed=tf.constant([5, 6]))
    counts = np.bincount(latents["pool"].numpy(), minlength=5)
    for pool, probability in enumerate(PROBABILITIES):
        assert_fraction_close(counts[pool] / num_samples, probability, num_samples)
    index_counts = np.bincount(latents["index"].numpy(), minlength=100)
    assert len(index_counts) == 100 and np.all(index_counts > 0)


def test_clean_pool_follows_the_xor_rule_up_to_the_bayes_error():
    inputs, labels = single_pool("clean")
    assert_fraction_close(np.mean(labels != rule_labels(inputs)), BAYES_ERROR, NUM_POOL_SAMPLES)


def test_label_noise_pool_replaces_half_the_labels_by_coin_flips():
    clean_inputs, clean_labels = single_pool("clean")
    inputs, labels = single_pool("label_noise", label_noise=0.5)
    np.testing.assert_array_equal(inputs, clean_inputs)  # same seed: same inputs, only labels changed
    # Replaced with probability 0.5 by a fair coin: a label changes with probability 0.25.
    assert_fraction_close(np.mean(labels != clean_labels), 0.25, NUM_POOL_SAMPLES)
    # Against the clean rule: 25% disagreement on top of the Bayes error (0.25 (1 - e) + 0.75 e).
    assert_fraction_close(np.mean(labels != rule_labels(inputs)), 0.25 + 0.5 * BAYES_ERROR, NUM_POOL_SAMPLES)


def test_flipped_pool_reverses_every_label():
    clean_inputs, clean_labels = single_pool("clean")
    inputs, labels = single_pool("flipped")
    np.testing.assert_array_equal(inputs, clean_inputs)
    np.testing.assert_array_equal(labels, 1 - clean_labels)
    assert labels.dtype == np.int32
    assert_fraction_close(np.mean(labels == rule_labels(inputs)), BAYES_ERROR, NUM_POOL_SAMPLES)


def test_shifted_pool_translates_the_inputs():
    clean_inputs, clean_labels = single_pool("clean")
    inputs, labels = single_pool("shifted", shift=(2.0, -1.0))
    np.testing.assert_array_equal(labels, clean_labels)
    np.testing.assert_allclose(inputs, clean_inputs + np.array([2.0, -1.0], np.float32), atol=1e-6)
    assert inputs.dtype == np.float32
    # The XOR mixture has mean 0 and per-coordinate variance 2^2 + 1 = 5.
    standard_error = np.sqrt(5.0 / NUM_POOL_SAMPLES)
    np.testing.assert_array_less(np.abs(inputs.mean(axis=0) - np.array([2.0, -1.0])), 4 * standard_error)
    np.testing.assert_array_less(np.abs(clean_inputs.mean(axis=0)), 4 * standard_error)


def test_unknown_kind_raises_naming_the_kind():
    with pytest.raises(ConfigError, match=r"kinds\[1\]='noisy'"):
        xor_pools(kinds=("clean", "noisy"), pool_size=10)


@pytest.mark.parametrize(
    ("initial_probabilities", "message"),
    [
        ([0.5, 0.5], "must be 5 probabilities, one per pool"),
        ([[0.2] * 5], "must be 5 probabilities, one per pool"),
        ([0.2, 0.2, 0.2, 0.2, 0.0], r"entries \[0\.\] are <= 0"),
        ([0.5, 0.3, 0.3, 0.1, -0.2], r"entries \[-0\.2\] are <= 0"),
        ([0.2, 0.2, np.nan, 0.2, 0.2], "not finite"),
    ],
)
def test_bad_initial_probabilities_raise_naming_the_setting(initial_probabilities, message):
    with pytest.raises(ConfigError, match=r"CategoricalPoolsSimulator\.initial_probabilities=") as raised:
        CategoricalPoolsSimulator(pools=xor_pools(pool_size=10), initial_probabilities=initial_probabilities)
    assert re.search(message, str(raised.value)), str(raised.value)
