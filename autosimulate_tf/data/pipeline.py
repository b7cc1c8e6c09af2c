"""`tf.data` from latents to a rendered, in-memory generated dataset `D_t`.

Latents are sampled on the driver with stateless seeds. Python/numpy renderers run
through a render backend (`autosimulate_tf.data.backends`, chosen by one gin binding,
e.g. `render_latents.backend = @ProcessPoolBackend()`); the default runs them through
`tf.numpy_function` in a parallel `tf.data` map (`deterministic=True`, so the order and
therefore the result never depend on thread timing). TF-op renderers run as one
compiled `tf.vectorized_map` whatever the backend. Rendering one latent (and judging
the result) is `autosimulate_tf.data.rendering`, shared by every backend; this module
works on whole batches.

`D_t` is materialised once per outer iteration because it is used three times:
for the warm-started inner steps, the curvature products, and the per-example
influence weights. A sample whose render raised, returned non-finite values or a
wrongly shaped output is marked invalid; the trainer drops it from both the
training data and the score term.
"""

import weakref

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from autosimulate_tf.data.backends import InProcessBackend
from autosimulate_tf.data.backends.in_process import render_in_process
from autosimulate_tf.data.rendering import RenderedData, render_one_numpy

__all__ = [
    "RenderedData",
    "keep_valid",
    "minibatch_indices",
    "preflight_render",
    "render_in_process",
    "render_latents",
]


_COMPILED_TF_RENDERS = weakref.WeakKeyDictionary()


def _compiled_tf_render(simulator):
    """A cached `tf.function` rendering a batch of latents with a TF-op `render`."""
    if simulator not in _COMPILED_TF_RENDERS:
        observation_shape = tuple(simulator.observation_shape)
        observation_dtype = tf.as_dtype(simulator.observation_dtype)
        label_dtype = tf.as_dtype(simulator.label_dtype)

        def render_one(latent):
            observation, label = simulator.render(latent)
            observation = tf.ensure_shape(tf.cast(observation, observation_dtype), observation_shape)
            label = tf.cast(label, label_dtype)
            valid = tf.logical_and(
                tf.reduce_all(tf.math.is_finite(tf.cast(observation, tf.float32))),
                tf.reduce_all(tf.math.is_finite(tf.cast(label, tf.float32))),
            )
            return observation, label, valid

        def render_batch(latents):
            return tf.vectorized_map(render_one, latents, fallback_to_while_loop=True)

        _COMPILED_TF_RENDERS[simulator] = tf.function(render_batch, reduce_retracing=True)
    return _COMPILED_TF_RENDERS[simulator]


_LOGGED_TF_OP_BACKENDS = set()


def _log_tf_op_backend_once(simulator, backend) -> None:
    """Says once per (backend, simulator) class pair that a TF-op renderer ignores a non-default backend."""
    if backend is None or isinstance(backend, InProcessBackend):
        return
    key = (type(backend).__name__, type(simulator).__name__)
    if key not in _LOGGED_TF_OP_BACKENDS:
        _LOGGED_TF_OP_BACKENDS.add(key)
        logging.info(
            "%s renders with TF ops: it runs as one compiled vectorized_map in this process; "
            "render_latents.backend=%s applies to Python/numpy renderers only.",
            key[1],
            key[0],
        )


@gin.configurable(allowlist=["backend"])
def render_latents(
    simulator,
    latents,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    render_timeout_s: float | None = None,
    backend=None,
) -> RenderedData:
    """Renders a batch of latents into a `RenderedData` (eagerly, off any tape).

    Only `backend` is gin-configurable, so one binding switches every caller (the
    trainer, the baselines' scratch training, the sample pictures):

        render_latents.backend = @ProcessPoolBackend()

    Args:
      simulator: a `Simulator`.
      latents: a batch of latents as returned by `simulator.sample_latents`.
      num_parallel_calls: parallelism of the default in-process render map (used
        only when `backend` is None; a backend carries its own settings).
      render_timeout_s: a Python render taking longer counts as failed (None: no limit).
      backend: a render backend from `autosimulate_tf.data.backends` for
        Python/numpy renderers; None renders in-process
        (`InProcessBackend(num_parallel_calls)`). TF-op renderers ignore it.

    Returns:
      `RenderedData` with one row per latent, in latent order.
    """
    if simulator.render_with_tf_ops:
        _log_tf_op_backend_once(simulator, backend)
        # TF-op renderers run as one compiled, vectorised function: building a tf.data
        # pipeline per call would cost more than rendering a few hundred samples, and
        # shipping TF graphs to other processes would cost more still.
        inputs, labels, valid = _compiled_tf_render(simulator)(latents)
        return RenderedData(inputs, labels, valid)

    if backend is None:
        backend = InProcessBackend(num_parallel_calls=num_parallel_calls)
    inputs, labels, valid = backend.render(simulator, latents, render_timeout_s)
    return RenderedData(
        tf.convert_to_tensor(inputs, tf.as_dtype(simulator.observation_dtype)),
        tf.convert_to_tensor(labels, tf.as_dtype(simulator.label_dtype)),
        tf.convert_to_tensor(valid, tf.bool),
    )


def minibatch_indices(seed, step, batch_size: int, num_examples) -> tf.Tensor:
    """Indices of minibatch `step` drawn with replacement from `num_examples`, statelessly from `seed`.

    Shared by AutoSimulate's inner loop and the baselines' scratch training, so both
    sample minibatches the same way and a restarted run draws the same ones.
    """
    return tf.random.stateless_uniform(
        [batch_size],
        seed=tf.random.experimental.stateless_fold_in(seed, step),
        minval=0,
        maxval=num_examples,
        dtype=tf.int32,
    )


def keep_valid(rendered: RenderedData, latents):
    """Drops invalid samples from the rendered data *and* the latents.

    Returns:
      `(inputs, labels, latents, num_dropped)`.
    """
    valid = np.asarray(rendered.valid, dtype=bool)
    num_dropped = int(valid.size - np.count_nonzero(valid))
    if num_dropped == 0:
        # The usual case. Eager `tf.boolean_mask` costs ~2 ms per tensor, a
        # fifth of a whole outer iteration on a cheap simulator: nothing to drop, nothing to pay.
        return rendered.inputs, rendered.labels, latents, 0
    kept = tf.constant(np.flatnonzero(valid), tf.int64)

    def keep(tensor):
        return tf.gather(tensor, kept)

    return keep(rendered.inputs), keep(rendered.labels), tf.nest.map_structure(keep, latents), num_dropped


def _preflight_tf_ops(simulator, latents) -> None:
    """Fails when the TF-op `render` raises on, or returns non-finite values for, every preflight latent."""
    try:
        rendered = render_latents(simulator, latents)
    except (tf.errors.OpError, ValueError, TypeError) as error:
        raise ValueError(f"{type(simulator).__name__}.render failed on preflight samples: {error}") from error
    if not bool(tf.reduce_any(rendered.valid)):
        raise ValueError(f"{type(simulator).__name__}.render returned non-finite values for every preflight sample.")


def preflight_render(simulator, seed, num_samples: int = 8, render_timeout_s: float | None = None) -> None:
    """Renders a few samples up front so a broken simulator fails before any expensive work.

    Only a simulator for which *every* preflight sample is unusable fails here; an
    occasional failure is the job of the per-sample dropping in `render_latents`.

    Raises:
      ValueError: naming the simulator and the first reason (exception, shape
        mismatch with `observation_shape`, non-finite output).
    """
    latents = simulator.sample_latents(num_samples, seed=seed)
    if simulator.render_with_tf_ops:
        _preflight_tf_ops(simulator, latents)
        return
    reasons = []
    for index in range(num_samples):
        latent = tf.nest.map_structure(lambda t, i=index: t[i].numpy(), latents)
        _, _, reason = render_one_numpy(simulator, latent, render_timeout_s)
        if reason is None:
            return
        reasons.append(reason)
    raise ValueError(f"All {num_samples} preflight renders failed; first: {reasons[0]}.")
