"""`tf.data` from latents to a rendered, in-memory generated dataset `D_t`.

Latents are sampled on the driver with stateless seeds. Python/numpy renderers run
through a render backend (`autosimulate_tf.data.backends`, chosen by one gin binding,
e.g. `render_latents.backend = @ProcessPoolBackend()`); the default runs them through
`tf.numpy_function` in a parallel `tf.data` map (`deterministic=True`, so the order and
therefore the result never depend on thread timing). TF-op renderers run as one
compiled `tf.vectorized_map` whatever the backend.

`D_t` is materialised once per outer iteration because it is used three times:
for the warm-started inner steps, the curvature products, and the per-example
influence weights. A sample whose render raised, returned non-finite values or a
wrongly shaped output is marked invalid; the trainer drops it from both the
training data and the score term.
"""

import threading
import weakref
from typing import NamedTuple

import gin
import numpy as np
import tensorflow as tf
from absl import logging


class RenderedData(NamedTuple):
    """A rendered batch: inputs `[n, ...]`, labels `[n, ...]`, valid `[n]` (bool)."""

    inputs: tf.Tensor
    labels: tf.Tensor
    valid: tf.Tensor


class RenderTimeoutError(RuntimeError):
    """A render took longer than `render_timeout_s`."""


def call_with_timeout(function, argument, timeout_s: float | None):
    """`function(argument)`, raising `RenderTimeoutError` after `timeout_s` seconds.

    A Python thread cannot be killed: a hung render is abandoned (daemon thread)
    and its sample counted as failed. Renderers that can hang for good belong in a
    process-based backend.
    """
    if timeout_s is None:
        return function(argument)
    outcome = {}

    def target():
        try:
            outcome["value"] = function(argument)
        except BaseException as error:  # Re-raised in the caller's thread.
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise RenderTimeoutError(f"render did not finish within render_timeout_s={timeout_s}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def check_rendered(simulator, observation, label) -> str | None:
    """Why a rendered `(observation, label)` is unusable, or None when it is fine."""
    expected = (tuple(simulator.observation_shape), tuple(simulator.label_shape))
    if observation.shape != expected[0] or label.shape != expected[1]:
        return (
            f"{type(simulator).__name__}.render returned observation shape {observation.shape} and label shape "
            f"{label.shape}; the simulator declares observation_shape={expected[0]}, label_shape={expected[1]}"
        )
    if not (np.all(np.isfinite(observation)) and np.all(np.isfinite(label))):
        return f"{type(simulator).__name__}.render returned non-finite values"
    return None


def placeholder_sample(simulator):
    """The finite `(observation, label)` of zeros that fills the row of an invalid sample."""
    return (
        np.zeros(tuple(simulator.observation_shape), simulator.observation_dtype),
        np.zeros(tuple(simulator.label_shape), simulator.label_dtype),
    )


def render_one_numpy(simulator, latent, timeout_s: float | None = None):
    """Renders one latent with a Python/numpy renderer.

    Returns:
      `(observation, label, reason)`; reason is None for a usable sample,
      otherwise why it is not (exception, timeout, shape, non-finite).
    """
    zeros = placeholder_sample(simulator)
    try:
        observation, label = call_with_timeout(simulator.render, latent, timeout_s)
        observation = np.asarray(observation, dtype=simulator.observation_dtype)
        label = np.asarray(label, dtype=simulator.label_dtype)
    except Exception as error:  # A user renderer may raise anything.
        return (*zeros, f"{type(simulator).__name__}.render raised {error!r}")
    reason = check_rendered(simulator, observation, label)
    if reason is not None:
        return (*zeros, reason)
    return observation, label, None


def _render_one_logged(simulator, latent, timeout_s):
    """`render_one_numpy` as both in-process paths use it: `(observation, label, valid)`, a dropped sample logged."""
    observation, label, reason = render_one_numpy(simulator, latent, timeout_s)
    if reason is not None:
        logging.log_every_n(logging.WARNING, "%s; sample dropped.", 100, reason)
    return observation, label, reason is None


def render_serially(simulator, latents, render_timeout_s: float | None = None):
    """Renders latents one after another in a plain Python loop, without building a `tf.data` map.

    Each latent is handed to `render` as numpy arrays, exactly as `tf.numpy_function`
    hands them in `render_in_process`, so both give identical results.

    Returns:
      `(observations [n, ...], labels [n, ...], valid [n] bool)` numpy arrays.
    """
    flat = [np.asarray(t) for t in tf.nest.flatten(latents)]
    num_samples = flat[0].shape[0]
    observations = np.zeros((num_samples, *simulator.observation_shape), simulator.observation_dtype)
    labels = np.zeros((num_samples, *simulator.label_shape), simulator.label_dtype)
    valid = np.zeros([num_samples], bool)
    for index in range(num_samples):
        latent = tf.nest.pack_sequence_as(latents, [np.asarray(t[index]) for t in flat])
        observations[index], labels[index], valid[index] = _render_one_logged(simulator, latent, render_timeout_s)
    return observations, labels, valid


def _numpy_render_fn(simulator, structure, timeout_s):
    """A `tf.numpy_function` body: one flat latent in, `(observation, label, valid)` out."""

    def render_one(*flat_latent):
        latent = tf.nest.pack_sequence_as(structure, list(flat_latent))
        observation, label, valid = _render_one_logged(simulator, latent, timeout_s)
        return observation, label, np.bool_(valid)

    return render_one


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
    from autosimulate_tf.data import backends  # Lazy: the backends module imports this one.

    if simulator.render_with_tf_ops:
        if backend is not None and not isinstance(backend, backends.InProcessBackend):
            key = (type(backend).__name__, type(simulator).__name__)
            if key not in _LOGGED_TF_OP_BACKENDS:
                _LOGGED_TF_OP_BACKENDS.add(key)
                logging.info(
                    "%s renders with TF ops: it runs as one compiled vectorized_map in this process; "
                    "render_latents.backend=%s applies to Python/numpy renderers only.",
                    key[1],
                    key[0],
                )
        # TF-op renderers run as one compiled, vectorised function: building a tf.data
        # pipeline per call would cost more than rendering a few hundred samples, and
        # shipping TF graphs to other processes would cost more still.
        inputs, labels, valid = _compiled_tf_render(simulator)(latents)
        return RenderedData(inputs, labels, valid)

    if backend is None:
        backend = backends.InProcessBackend(num_parallel_calls=num_parallel_calls)
    inputs, labels, valid = backend.render(simulator, latents, render_timeout_s)
    return RenderedData(
        tf.convert_to_tensor(inputs, tf.as_dtype(simulator.observation_dtype)),
        tf.convert_to_tensor(labels, tf.as_dtype(simulator.label_dtype)),
        tf.convert_to_tensor(valid, tf.bool),
    )


def render_in_process(
    simulator, latents, num_parallel_calls: int = tf.data.AUTOTUNE, render_timeout_s: float | None = None
) -> RenderedData:
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
    return RenderedData(inputs, labels, valid)


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
        # The usual case. Eager `tf.boolean_mask` costs ~2 ms per tensor, which on a cheap
        # simulator was a fifth of a whole outer iteration; nothing to drop, nothing to pay.
        return rendered.inputs, rendered.labels, latents, 0
    kept = tf.constant(np.flatnonzero(valid), tf.int64)

    def keep(tensor):
        return tf.gather(tensor, kept)

    return keep(rendered.inputs), keep(rendered.labels), tf.nest.map_structure(keep, latents), num_dropped


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
        try:
            rendered = render_latents(simulator, latents)
        except (tf.errors.OpError, ValueError, TypeError) as error:
            raise ValueError(f"{type(simulator).__name__}.render failed on preflight samples: {error}") from error
        if not bool(tf.reduce_any(rendered.valid)):
            raise ValueError(
                f"{type(simulator).__name__}.render returned non-finite values for every preflight sample."
            )
        return
    reasons = []
    for index in range(num_samples):
        latent = tf.nest.map_structure(lambda t, i=index: t[i].numpy(), latents)
        _, _, reason = render_one_numpy(simulator, latent, render_timeout_s)
        if reason is None:
            return
        reasons.append(reason)
    raise ValueError(f"All {num_samples} preflight renders failed; first: {reasons[0]}.")
