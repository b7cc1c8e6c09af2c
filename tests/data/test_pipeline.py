"""The render pipeline: `render_latents` and `keep_valid`.

With a numpy renderer (run through `tf.numpy_function` in a parallel, deterministic
`tf.data` map) the result must equal a plain Python loop over the latents, in latent
order, even when render times vary. A render that raises, returns NaN/Inf or returns a
wrongly shaped observation or label must mark exactly that sample invalid without
failing the batch, and `keep_valid` must drop those rows from inputs, labels and every
latent tensor. A TF-op renderer (`GaussianMixtureSimulator`) must match
`tf.vectorized_map(simulator.render, latents)` with every sample valid.
"""

import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.data import RenderedData, keep_valid, render_latents
from autosimulate_tf.simulators import GaussianMixtureSimulator, Simulator

tfd = tfp.distributions

SEED = tf.constant([1, 2])

# Failure modes selected by the `mode` latent of `ModalSimulator`.
OK, RAISES, NAN, INF, WRONG_OBSERVATION_SHAPE, WRONG_LABEL_SHAPE, NOT_AN_ARRAY, INF_LABEL = range(8)


class ModalSimulator(Simulator):
    """Numpy renderer: `x = (value, 2 * value, step)` and label `step % 3`, unless `mode` asks it to fail."""

    observation_shape = (3,)
    num_classes = 3
    render_with_tf_ops = False

    def __init__(self, sleep_s: float = 0.0):
        super().__init__(name="modal")
        self.sleep_s = sleep_s
        self.add_parameter("loc", 0.0)

    def latent_distribution(self):
        return tfd.JointDistributionNamed(
            {
                "mode": tfd.Deterministic(tf.constant(OK, tf.int32)),
                "step": tfd.Categorical(logits=tf.zeros([10])),
                "value": tfd.Normal(self.parameter("loc"), 1.0),
            }
        )

    def render(self, latent):
        mode, step, value = int(latent["mode"]), int(latent["step"]), float(latent["value"])
        if self.sleep_s:
            # Later-started samples often finish first: an order-preserving map must not care.
            time.sleep(self.sleep_s * ((7 * step) % 10))
        observation = np.array([value, 2.0 * value, step], np.float32)
        label = step % 3
        if mode == RAISES:
            raise RuntimeError(f"cannot render step {step}")
        if mode == NAN:
            observation[1] = np.nan
        elif mode == INF:
            observation[0] = -np.inf
        elif mode == WRONG_OBSERVATION_SHAPE:
            observation = observation[:2]
        elif mode == WRONG_LABEL_SHAPE:
            label = np.array([label, label])
        elif mode == NOT_AN_ARRAY:
            observation = {"not": "an array"}
        elif mode == INF_LABEL:
            label = np.inf
        return observation, label


def expected_render(latent):
    step, value = int(latent["step"]), float(latent["value"])
    return np.array([value, 2.0 * value, step], np.float32), step % 3


def latents_with_modes(modes, seed=SEED):
    """Latents from `ModalSimulator` with the `mode` column replaced by `modes`."""
    latents = ModalSimulator().sample_latents(len(modes), seed=seed)
    return {**latents, "mode": tf.constant(modes, tf.int32)}


def test_numpy_renderer_matches_a_python_loop_in_latent_order():
    simulator = ModalSimulator(sleep_s=0.001)
    latents = simulator.sample_latents(64, seed=SEED)
    rendered = render_latents(simulator, latents, num_parallel_calls=tf.data.AUTOTUNE)
    assert isinstance(rendered, RenderedData)
    assert rendered.inputs.shape == (64, 3) and rendered.inputs.dtype == tf.float32
    assert rendered.labels.shape == (64,) and rendered.labels.dtype == tf.int32
    assert rendered.valid.dtype == tf.bool and bool(tf.reduce_all(rendered.valid))
    rows = [
        simulator.render({key: tensor[i].numpy() for key, tensor in latents.items()})
        for i in range(64)  # plain Python loop, no tf.data
    ]
    np.testing.assert_array_equal(rendered.inputs.numpy(), np.stack([row[0] for row in rows]))
    np.testing.assert_array_equal(rendered.labels.numpy(), np.array([row[1] for row in rows], np.int32))
    assert len(np.unique(latents["step"].numpy())) > 5, "the check needs varied render times"


def test_numpy_renderer_sees_numpy_values_of_one_latent():
    seen = []

    class Recording(ModalSimulator):
        def render(self, latent):
            seen.append({key: (type(value), np.shape(value)) for key, value in latent.items()})
            return super().render(latent)

    simulator = Recording()
    render_latents(simulator, simulator.sample_latents(5, seed=SEED))
    assert len(seen) == 5
    for record in seen:
        assert set(record) == {"mode", "step", "value"}
        assert all(issubclass(kind, np.generic | np.ndarray) and shape == () for kind, shape in record.values())


def test_failing_renders_are_marked_invalid_and_the_others_kept():
    modes = [OK, RAISES, OK, NAN, INF, OK, WRONG_OBSERVATION_SHAPE, WRONG_LABEL_SHAPE, NOT_AN_ARRAY, INF_LABEL, OK, OK]
    latents = latents_with_modes(modes)
    rendered = render_latents(ModalSimulator(), latents)  # must not raise
    np.testing.assert_array_equal(rendered.valid.numpy(), np.array(modes) == OK)
    inputs, labels = rendered.inputs.numpy(), rendered.labels.numpy()
    assert np.all(np.isfinite(inputs)), "invalid rows must be filled with finite placeholders"
    for i, mode in enumerate(modes):
        if mode == OK:
            observation, label = expected_render({key: tensor[i] for key, tensor in latents.items()})
            np.testing.assert_array_equal(inputs[i], observation)
            assert labels[i] == label


def test_every_sample_failing_still_returns_a_full_batch():
    rendered = render_latents(ModalSimulator(), latents_with_modes([RAISES, NAN, INF]))
    assert rendered.inputs.shape == (3, 3)
    assert not np.any(rendered.valid.numpy())


def test_keep_valid_drops_invalid_rows_from_inputs_labels_and_every_latent():
    modes = [OK, NAN, OK, OK, RAISES, WRONG_OBSERVATION_SHAPE, OK, INF]
    latents = latents_with_modes(modes)
    rendered = render_latents(ModalSimulator(), latents)
    inputs, labels, kept_latents, num_dropped = keep_valid(rendered, latents)
    keep = np.array(modes) == OK
    assert num_dropped == 4
    np.testing.assert_array_equal(inputs.numpy(), rendered.inputs.numpy()[keep])
    np.testing.assert_array_equal(labels.numpy(), rendered.labels.numpy()[keep])
    assert set(kept_latents) == set(latents)
    for key, tensor in latents.items():
        np.testing.assert_array_equal(kept_latents[key].numpy(), tensor.numpy()[keep], err_msg=key)
    np.testing.assert_array_equal(kept_latents["mode"].numpy(), np.zeros(4))
    # Kept rows still line up with their latents.
    np.testing.assert_array_equal(inputs.numpy()[:, 0], kept_latents["value"].numpy())


def test_keep_valid_with_all_samples_valid_is_the_identity():
    simulator = GaussianMixtureSimulator()
    latents = simulator.sample_latents(20, seed=SEED)
    rendered = render_latents(simulator, latents)
    inputs, labels, kept_latents, num_dropped = keep_valid(rendered, latents)
    assert num_dropped == 0
    np.testing.assert_array_equal(inputs.numpy(), rendered.inputs.numpy())
    np.testing.assert_array_equal(labels.numpy(), rendered.labels.numpy())
    np.testing.assert_array_equal(kept_latents["point"].numpy(), latents["point"].numpy())


@pytest.mark.parametrize("num_parallel_calls", [1, tf.data.AUTOTUNE])
def test_tf_op_renderer_matches_vectorized_map(num_parallel_calls):
    simulator = GaussianMixtureSimulator()
    latents = simulator.sample_latents(128, seed=SEED)
    rendered = render_latents(simulator, latents, num_parallel_calls=num_parallel_calls)
    assert bool(tf.reduce_all(rendered.valid))
    observations, labels = tf.vectorized_map(simulator.render, latents)
    np.testing.assert_array_equal(rendered.inputs.numpy(), observations.numpy())
    np.testing.assert_array_equal(rendered.labels.numpy(), labels.numpy())
    np.testing.assert_array_equal(rendered.inputs.numpy(), latents["point"].numpy())
    np.testing.assert_array_equal(rendered.labels.numpy(), latents["component"].numpy() // 2)


def test_tf_op_renderer_marks_non_finite_observations_invalid():
    simulator = GaussianMixtureSimulator()
    points = np.array([[0.0, 1.0], [np.nan, 0.0], [np.inf, 2.0], [3.0, 4.0]], np.float32)
    latents = {"component": tf.constant([0, 1, 2, 3]), "point": tf.constant(points)}
    rendered = render_latents(simulator, latents)
    np.testing.assert_array_equal(rendered.valid.numpy(), [True, False, False, True])
