"""`Simulator.temporary_psi`: psi set for one `with` block, then restored bit-exactly.

Covers: the exact unconstrained values come back after a normal exit and after an
exception (on a `SoftmaxCentered` component, where a constrained round trip would not be
exact); a partial `constrained` dict changes only its components; `unconstrained` values
in `psi_variables` order; inside a `tf.function` (log_prob under a stored psi, then psi
unchanged, over several calls of one trace); through a `WrappingSimulator`; gradients
inside the block; and the errors for unknown names and malformed arguments.
"""

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.simulators import (
    CategoricalPoolsSimulator,
    FaultInjectingSimulator,
    GaussianMixtureSimulator,
    ProceduralDigitsSimulator,
    xor_pools,
)

SEED = tf.constant([4, 2])
STORED_MEANS = np.array([[2.0, 2.0], [-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0]], np.float32)


def unconstrained_values(simulator):
    """Copies of every psi variable's unconstrained value, in `psi_variables` order."""
    return [variable.numpy().copy() for variable in simulator.psi_variables]


def assert_bit_exact(simulator, expected):
    """Every psi variable holds exactly `expected` (no tolerance)."""
    for name, variable, value in zip(simulator.parameter_names, simulator.psi_variables, expected, strict=True):
        assert np.array_equal(variable.numpy(), value), name


def pools_with_awkward_psi():
    """Pools whose unconstrained psi is arbitrary floats (not a round-trip image of a probability vector)."""
    simulator = CategoricalPoolsSimulator(pools=xor_pools(pool_size=10))
    simulator.psi_variables[0].assign(np.array([0.1234567, -1.7654321, 2.5e-3, 3.3333333], np.float32))
    return simulator


def test_psi_is_restored_bit_exactly_after_a_normal_exit():
    simulator = pools_with_awkward_psi()
    before = unconstrained_values(simulator)
    probabilities = np.array([0.1, 0.2, 0.3, 0.15, 0.25], np.float32)
    with simulator.temporary_psi(constrained={"pool_probabilities": probabilities}) as inside:
        assert inside is simulator
        np.testing.assert_allclose(simulator.parameter("pool_probabilities").numpy(), probabilities, atol=1e-6)
    assert_bit_exact(simulator, before)
    # The constrained round trip the context manager avoids is not exact here.
    round_trip = pools_with_awkward_psi()
    round_trip.set_constrained_parameters(round_trip.constrained_parameters())
    assert not np.array_equal(round_trip.psi_variables[0].numpy(), before[0])


def test_psi_is_restored_bit_exactly_after_an_exception():
    simulator = pools_with_awkward_psi()
    before = unconstrained_values(simulator)
    with pytest.raises(RuntimeError, match="inside the block"):
        with simulator.temporary_psi(unconstrained=[np.zeros(4, np.float32)]):
            np.testing.assert_allclose(simulator.parameter("pool_probabilities").numpy(), 0.2, atol=1e-6)
            raise RuntimeError("inside the block")
    assert_bit_exact(simulator, before)


def test_a_partial_dict_changes_only_its_components():
    simulator = ProceduralDigitsSimulator()
    before = simulator.constrained_parameters()
    unconstrained_before = unconstrained_values(simulator)
    with simulator.temporary_psi(constrained={"rotation_mean": 7.5, "log_noise_log_scale": -1.0}):
        inside = simulator.constrained_parameters()
        assert inside["rotation_mean"] == pytest.approx(7.5)
        assert inside["log_noise_log_scale"] == pytest.approx(-1.0)
        for name, value in before.items():
            if name not in ("rotation_mean", "log_noise_log_scale"):
                assert np.array_equal(inside[name], value), name
    assert_bit_exact(simulator, unconstrained_before)


def test_without_arguments_it_only_saves_and_restores():
    simulator = GaussianMixtureSimulator()
    before = unconstrained_values(simulator)
    with simulator.temporary_psi():
        simulator.psi_variables[0].assign_add(tf.ones([4, 2]))  # e.g. a trial optimizer step
    assert_bit_exact(simulator, before)


def test_inside_a_tf_function_log_prob_uses_the_stored_psi_and_psi_is_unchanged_afterwards():
    simulator = GaussianMixtureSimulator()
    before = unconstrained_values(simulator)
    latents = simulator.sample_latents(64, seed=SEED)
    traces = []

    @tf.function
    def log_prob_under(stored_means):
        traces.append(1)
        current_before = simulator.log_prob(latents)
        with simulator.temporary_psi(constrained={"means": stored_means}):
            stored = simulator.log_prob(latents)
        return current_before, stored, simulator.log_prob(latents)

    expected_current = simulator.log_prob(latents).numpy()
    for shift in (0.0, 1.0):  # one trace, two calls: the stored psi is an input, not a trace-time constant
        means = STORED_MEANS + shift
        current_before, stored, current_after = log_prob_under(tf.constant(means))
        reference = GaussianMixtureSimulator(initial_means=means)
        np.testing.assert_allclose(stored.numpy(), reference.log_prob(latents).numpy(), rtol=1e-6)
        assert not np.allclose(stored.numpy(), expected_current)
        np.testing.assert_array_equal(current_before.numpy(), expected_current)
        np.testing.assert_array_equal(current_after.numpy(), expected_current)
        assert_bit_exact(simulator, before)
    assert len(traces) == 1


def test_unconstrained_values_inside_a_tf_function():
    simulator = pools_with_awkward_psi()
    before = unconstrained_values(simulator)

    @tf.function
    def probabilities_under(unconstrained):
        with simulator.temporary_psi(unconstrained=[unconstrained]):
            inside = simulator.parameter("pool_probabilities")
        return inside, simulator.parameter("pool_probabilities")

    inside, after = probabilities_under(tf.zeros([4]))
    np.testing.assert_allclose(inside.numpy(), 0.2, atol=1e-6)
    np.testing.assert_array_equal(after.numpy(), simulator.parameter("pool_probabilities").numpy())
    assert_bit_exact(simulator, before)


def test_a_wrapper_sets_and_restores_the_wrapped_simulators_psi():
    wrapped = GaussianMixtureSimulator()
    wrapper = FaultInjectingSimulator(simulator=wrapped, nan_rate=0.5)
    before = unconstrained_values(wrapped)
    with wrapper.temporary_psi(constrained={"means": STORED_MEANS}):
        np.testing.assert_array_equal(wrapped.parameter("means").numpy(), STORED_MEANS)
    assert_bit_exact(wrapped, before)


def test_gradients_flow_to_psi_inside_the_block():
    simulator = GaussianMixtureSimulator()
    latents = simulator.sample_latents(16, seed=SEED)
    with simulator.temporary_psi(constrained={"means": STORED_MEANS}), tf.GradientTape() as tape:
        total = tf.reduce_sum(simulator.log_prob(latents))
    (gradient,) = tape.gradient(total, simulator.psi_variables)
    reference = GaussianMixtureSimulator(initial_means=STORED_MEANS)
    with tf.GradientTape() as reference_tape:
        reference_total = tf.reduce_sum(reference.log_prob(latents))
    (expected,) = reference_tape.gradient(reference_total, reference.psi_variables)
    np.testing.assert_allclose(tf.convert_to_tensor(gradient).numpy(), tf.convert_to_tensor(expected).numpy())


def test_an_unknown_name_raises_naming_the_known_ones_and_assigns_nothing():
    simulator = GaussianMixtureSimulator()
    before = unconstrained_values(simulator)
    with pytest.raises(KeyError, match=r"'mean'.*known: \['means'\]"):
        with simulator.temporary_psi(constrained={"means": STORED_MEANS, "mean": STORED_MEANS}):
            pytest.fail("the block must not run")
    assert_bit_exact(simulator, before)


def test_malformed_arguments_raise():
    simulator = GaussianMixtureSimulator()
    with pytest.raises(ValueError, match=r"needs 1 values .*\['means'\].*got 2"):
        with simulator.temporary_psi(unconstrained=[STORED_MEANS, STORED_MEANS]):
            pass
    with pytest.raises(ValueError, match="not both"):
        with simulator.temporary_psi(constrained={"means": STORED_MEANS}, unconstrained=[STORED_MEANS]):
            pass
