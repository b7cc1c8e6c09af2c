"""Pickled and copied simulators beyond the registry's conformance checks; `SlowRenderSimulator`.

That a pickled copy of every exported simulator renders like the original and raises
`PsiNotAvailableError` on psi is checked over the registry in `test_registry.py`. Here: a
pickle carries no TF state (and is small), `copy.deepcopy` drops psi too and its error says
how to duplicate a simulator, and `SlowRenderSimulator` renders exactly like the simulator
it wraps, shares its psi and does a deterministic amount of work.
"""

import pickle

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators import GaussianMixtureSimulator, SlowRenderSimulator
from autosimulate_tf.simulators.base import PsiNotAvailableError
from autosimulate_tf.simulators.slow import ITERATIONS_PER_MS, busy_work

SEED = tf.constant([3, 1])


def one_latent(latents, index):
    """Latent `index` of a batch as numpy values, the way the render pipeline passes it."""
    return tf.nest.map_structure(lambda tensor: np.array(tensor.numpy()[index]), latents)


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
    with pytest.raises(ConfigError, match=r"SlowRenderSimulator\.work_ms=-1\.0 must be"):
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
