"""The in-process render backend (the default): a plain loop for small batches, a `tf.data` map for larger ones."""

import gin
import numpy as np
import tensorflow as tf

from autosimulate_tf.data import rendering
from autosimulate_tf.data.backends import base
from autosimulate_tf.errors import check


def _numpy_render_fn(simulator, structure, timeout_s):
    """A `tf.numpy_function` body: one flat latent in, `(observation, label, valid)` out."""

    def render_one(*flat_latent):
        latent = tf.nest.pack_sequence_as(structure, list(flat_latent))
        observation, label, valid = rendering.render_one_logged(simulator, latent, timeout_s)
        return observation, label, np.bool_(valid)

    return render_one


def render_in_process(
    simulator, latents, num_parallel_calls: int = tf.data.AUTOTUNE, render_timeout_s: float | None = None
) -> rendering.RenderedData:
    """Renders latents with a Python/numpy renderer in a parallel, order-preserving `tf.data` map.

    The threads of the map share the GIL: a GIL-bound renderer gains nothing from
    `num_parallel_calls > 1` (use a process or Ray backend), one that releases it
    (numpy on large arrays, I/O, C extensions) does.
    """
    num_samples = int(tf.nest.flatten(latents)[0].shape[0])
    dataset = tf.data.Dataset.from_tensor_slices(latents)
    observation_shape = tuple(simulator.observation_shape)
    observation_dtype = tf.as_dtype(simulator.observation_dtype)
    label_dtype = tf.as_dtype(simulator.label_dtype)
    numpy_render = _numpy_render_fn(simulator, latents, render_timeout_s)

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
    return rendering.RenderedData(inputs, labels, valid)


@gin.configurable(module="autosimulate_tf.data.backends")
class InProcessBackend(base.RenderBackend):
    """Renders in this process: small batches in a plain loop, larger ones in a parallel `tf.data` map.

    The default backend. The map (`tf.numpy_function`, order-preserving) runs its
    threads under the GIL, so a GIL-bound (pure Python) renderer runs at serial speed
    whatever `num_parallel_calls` is; a renderer that releases the GIL (large numpy
    operations, C extensions, I/O) does run in parallel. Building the map costs ~20 ms
    per call, more than rendering a few samples of a cheap renderer, so batches under
    `parallel_min_batch` are rendered one after another in a plain loop instead; both
    paths return identical arrays. A hung render is abandoned after `timeout_s` (a
    thread cannot be killed) and keeps running in the background; the process
    backends stop it.
    """

    def __init__(self, num_parallel_calls: int = tf.data.AUTOTUNE, parallel_min_batch: int = 64):
        """Args:
        num_parallel_calls: parallelism of the `tf.data` map (`tf.data.AUTOTUNE`
          or a positive number).
        parallel_min_batch: batches with fewer latents are rendered in a plain
          loop (0: always use the map).

        Raises:
          ConfigError: naming the binding of a setting out of range.
        """
        check(
            num_parallel_calls == tf.data.AUTOTUNE or num_parallel_calls >= 1,
            f"InProcessBackend.num_parallel_calls={num_parallel_calls} must be >= 1 or AUTOTUNE.",
        )
        check(parallel_min_batch >= 0, f"InProcessBackend.parallel_min_batch={parallel_min_batch} must be >= 0.")
        self.num_parallel_calls = num_parallel_calls
        self.parallel_min_batch = parallel_min_batch

    def render(self, simulator, latents, timeout_s: float | None = None):
        """See `RenderBackend.render`."""
        num_samples = int(tf.nest.flatten(latents)[0].shape[0])
        if num_samples < self.parallel_min_batch:
            return rendering.render_serially(simulator, latents, timeout_s)
        rendered = render_in_process(simulator, latents, self.num_parallel_calls, timeout_s)
        return rendered.inputs.numpy(), rendered.labels.numpy(), rendered.valid.numpy()
