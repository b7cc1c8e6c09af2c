"""`tf.data` from latents to a rendered, in-memory generated dataset `D_t`.

Latents are sampled on the driver with stateless seeds; rendering runs in a
parallel `tf.data` map (`deterministic=True`, so the order and therefore the
result never depend on thread timing). Python/numpy renderers run through
`tf.numpy_function`; TF-op renderers run inside the graph.

`D_t` is materialised once per outer iteration because it is used three times:
for the warm-started inner steps, the curvature products, and the per-example
influence weights. A sample whose render raised, returned non-finite values or a
wrongly shaped output is marked invalid; the trainer drops it from both the
training data and the score term.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging


class RenderedData(NamedTuple):
    """A rendered batch: inputs `[n, ...]`, labels `[n, ...]`, valid `[n]` (bool)."""

    inputs: tf.Tensor
    labels: tf.Tensor
    valid: tf.Tensor


def _numpy_render_fn(simulator):
    """Wraps `simulator.render` so that a failing sample yields `valid=False` instead of raising."""
    observation_shape = tuple(simulator.observation_shape)
    label_shape = tuple(simulator.label_shape)

    def render_one(*flat_latent):
        latent = tf.nest.pack_sequence_as(render_one.structure, list(flat_latent))
        zeros = (np.zeros(observation_shape, simulator.observation_dtype), np.zeros(label_shape, simulator.label_dtype))
        try:
            observation, label = simulator.render(latent)
            observation = np.asarray(observation, dtype=simulator.observation_dtype)
            label = np.asarray(label, dtype=simulator.label_dtype)
        except Exception as error:
            logging.log_every_n(logging.WARNING, "render raised %r; sample dropped.", 100, error)
            return (*zeros, np.bool_(False))
        if observation.shape != observation_shape or label.shape != label_shape:
            logging.log_every_n(
                logging.WARNING,
                "render returned shapes %s/%s, expected %s/%s; sample dropped.",
                100,
                observation.shape,
                label.shape,
                observation_shape,
                label_shape,
            )
            return (*zeros, np.bool_(False))
        finite = np.all(np.isfinite(observation)) and np.all(np.isfinite(label))
        if not finite:
            return (*zeros, np.bool_(False))
        return observation, label, np.bool_(True)

    return render_one


def render_latents(simulator, latents, num_parallel_calls: int = tf.data.AUTOTUNE) -> RenderedData:
    """Renders a batch of latents into a `RenderedData` (eagerly, off any tape).

    Args:
      simulator: a `Simulator`.
      latents: a batch of latents as returned by `simulator.sample_latents`.
      num_parallel_calls: parallelism of the render map.

    Returns:
      `RenderedData` with one row per latent, in latent order.
    """
    num_samples = int(tf.nest.flatten(latents)[0].shape[0])
    dataset = tf.data.Dataset.from_tensor_slices(latents)
    observation_shape = tuple(simulator.observation_shape)
    observation_dtype = tf.as_dtype(simulator.observation_dtype)
    label_dtype = tf.as_dtype(simulator.label_dtype)

    if simulator.render_with_tf_ops:

        def render_one(latent):
            observation, label = simulator.render(latent)
            observation = tf.cast(observation, observation_dtype)
            label = tf.cast(label, label_dtype)
            valid = tf.logical_and(
                tf.reduce_all(tf.math.is_finite(tf.cast(observation, tf.float32))),
                tf.reduce_all(tf.math.is_finite(tf.cast(label, tf.float32))),
            )
            observation = tf.ensure_shape(observation, observation_shape)
            return observation, label, valid

    else:
        numpy_render = _numpy_render_fn(simulator)
        numpy_render.structure = latents

        def render_one(latent):
            observation, label, valid = tf.numpy_function(
                numpy_render, tf.nest.flatten(latent), (observation_dtype, label_dtype, tf.bool), stateful=False
            )
            observation.set_shape(observation_shape)
            label.set_shape(tuple(simulator.label_shape))
            valid.set_shape(())
            return observation, label, valid

    dataset = dataset.map(render_one, num_parallel_calls=num_parallel_calls, deterministic=True)
    inputs, labels, valid = dataset.batch(num_samples).get_single_element()
    return RenderedData(inputs, labels, valid)


def keep_valid(rendered: RenderedData, latents):
    """Drops invalid samples from the rendered data *and* the latents.

    Returns:
      `(inputs, labels, latents, num_dropped)`.
    """
    valid = rendered.valid
    kept_latents = tf.nest.map_structure(lambda t: tf.boolean_mask(t, valid), latents)
    num_dropped = int(tf.size(valid)) - int(tf.reduce_sum(tf.cast(valid, tf.int32)))
    return (
        tf.boolean_mask(rendered.inputs, valid),
        tf.boolean_mask(rendered.labels, valid),
        kept_latents,
        num_dropped,
    )
