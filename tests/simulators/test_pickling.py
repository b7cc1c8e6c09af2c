"""Pickled simulators (what the process and Ray render backends ship): render works, psi does not.

A pickled copy of every shipped simulator must render every latent exactly like the
original, must be small (no TF state), and must raise `PsiNotAvailableError` on any
access to psi instead of silently using stale values, while the original keeps working.
`SlowRenderSimulator` must render exactly like the simulator it wraps.
"""

import pickle

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.simulators import (
    CategoricalPoolsSimulator,
    FaultInjectingSimulator,
    GaussianMixtureSimulator,
    ProceduralDigitsSimulator,
    SlowRenderSimulator,
)
from autosimulate_tf.simulators.base import PsiNotAvailableError
from autosimulate_tf.simulators.slow import ITERATIONS_PER_MS, busy_work

SEED = tf.constant([3, 1])

SIMULATORS = {
    "gmm": GaussianMixtureSimulator,
    "pools": CategoricalPoolsSimulator,
    "digits": ProceduralDigitsSimulator,
    "faulty_gmm": lambda: FaultInjectingSimulator(simulator=GaussianMixtureSimulator(), nan_rate=0.3, raise_rate=0.2),
    "slow_pools": lambda: SlowRenderSimulator(simulator=CategoricalPoolsSimulator(), work_ms=0.1),
}


def one_latent(latents, index):
    return tf.nest.map_structure(lambda tensor: np.array(tensor.numpy()[index]), latents)


def render_or_error(simulator, latent):
    try:
        observation, label = simulator.render(latent)
    except Exception as error:  # FaultInjectingSimulator raises on purpose.
        return type(error)
    return np.asarray(observation), np.asarray(label)


@pytest.mark.parametrize("name", SIMULATORS)
def test_a_pickled_copy_renders_like_the_original(name):
    simulator = SIMULATORS[name]()
    simulator.sample_latents(2, seed=SEED)  # a compiled sampler is attached: it must not break pickling
    copy = pickle.loads(pickle.dumps(simulator))
    latents = simulator.sample_latents(12, seed=SEED)
    for index in range(12):
        latent = one_latent(latents, index)
        original, copied = render_or_error(simulator, latent), render_or_error(copy, latent)
        if isinstance(original, type):
            assert copied is original
        else:
            np.testing.assert_array_equal(copied[0], original[0])
            np.testing.assert_array_equal(copied[1], original[1])
    assert type(copy) is type(simulator)
    assert tuple(copy.observation_shape) == tuple(simulator.observation_shape)


@pytest.mark.parametrize("name", SIMULATORS)
def test_psi_is_not_available_in_a_pickled_copy_and_the_original_is_untouched(name):
    simulator = SIMULATORS[name]()
    copy = pickle.loads(pickle.dumps(simulator))
    accesses = {
        "parameter": lambda: copy.parameter(simulator.parameter_names[0]),
        "psi_variables": lambda: copy.psi_variables,
        "parameter_names": lambda: copy.parameter_names,
        "constrained_parameters": copy.constrained_parameters,
        "latent_distribution": copy.latent_distribution,
        "sample_latents": lambda: copy.sample_latents(4, seed=SEED),
        "set_unconstrained_vector": lambda: copy.set_unconstrained_vector(simulator.unconstrained_vector()),
    }
    for access, call in accesses.items():
        try:
            call()
        except PsiNotAvailableError as error:
            assert "render must depend only on its latent" in str(error)
        else:
            pytest.fail(f"{access} worked on a pickled copy")
    assert copy.variables == ()  # no tf.Variable travelled
    assert simulator.psi_variables and simulator.sample_latents(3, seed=SEED) is not None
    # A copy of a copy is still a working renderer.
    again = pickle.loads(pickle.dumps(copy))
    latent = one_latent(simulator.sample_latents(1, seed=SEED), 0)
    np.testing.assert_array_equal(np.asarray(again.render(latent)[0]), np.asarray(copy.render(latent)[0]))


def test_pickles_carry_no_tf_state():
    simulator = GaussianMixtureSimulator()
    simulator.sample_latents(2, seed=SEED)
    payload = pickle.dumps(simulator)
    assert b"ResourceVariable" not in payload and b"Bijector" not in payload
    assert len(payload) < 2000


def test_slow_render_simulator_renders_like_the_wrapped_one_and_shares_psi():
    wrapped = GaussianMixtureSimulator()
    slow = SlowRenderSimulator(simulator=wrapped, work_ms=0.5)
    assert not slow.render_with_tf_ops and wrapped.render_with_tf_ops
    assert slow.work_iterations == round(0.5 * ITERATIONS_PER_MS)
    assert slow.psi_variables == wrapped.psi_variables
    latents = slow.sample_latents(8, seed=SEED)
    for index in range(8):
        latent = one_latent(latents, index)
        observation, label = slow.render(latent)
        assert observation.dtype == np.float32 and label.dtype == np.int32
        np.testing.assert_array_equal(observation, np.asarray(wrapped.render(latent)[0]))
        assert label == int(wrapped.render(latent)[1])
    with pytest.raises(ValueError, match="work_ms"):
        SlowRenderSimulator(simulator=wrapped, work_ms=-1.0)


def test_busy_work_is_deterministic():
    assert busy_work(1000) == busy_work(1000)
    assert busy_work(1000) != busy_work(1001)
    assert busy_work(0) == 0


def test_a_deep_copy_also_drops_psi_and_the_error_says_how_to_duplicate_a_simulator():
    import copy

    original = GaussianMixtureSimulator()
    original.set_constrained_parameters({"means": [[1.0, 2.0], [-1.0, 0.5], [0.0, -2.0], [2.5, 1.5]]})
    duplicate = copy.deepcopy(original)
    with pytest.raises(PsiNotAvailableError, match="set_constrained_parameters"):
        duplicate.sample_latents(4, seed=tf.constant([0, 1]))
    # The documented way keeps psi.
    rebuilt = GaussianMixtureSimulator()
    rebuilt.set_constrained_parameters(original.constrained_parameters())
    np.testing.assert_allclose(rebuilt.parameter("means").numpy(), original.parameter("means").numpy(), rtol=1e-6)
    assert not np.allclose(rebuilt.parameter("means").numpy(), GaussianMixtureSimulator().parameter("means").numpy())
