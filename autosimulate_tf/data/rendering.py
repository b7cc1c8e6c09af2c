"""Rendering one latent at a time with a Python/numpy renderer, and judging the result.

Every way of rendering a Python/numpy renderer (the in-process `tf.data` map, the plain
loop, the process-pool and Ray workers) goes through `render_one_numpy`, so a given
latent gives the same observation, label and validity wherever it is rendered. A
sample whose render raised, timed out, returned non-finite values or a wrongly shaped
output is invalid: its row holds the finite zeros of `placeholder_sample` and the
reason is reported.

This module imports no other `autosimulate_tf.data` module, so the pipeline and the
render backends can both build on it.
"""

import threading
from typing import NamedTuple

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


def render_one_logged(simulator, latent, timeout_s: float | None):
    """`render_one_numpy` as the in-process paths use it: `(observation, label, valid)`, a dropped sample logged."""
    observation, label, reason = render_one_numpy(simulator, latent, timeout_s)
    if reason is not None:
        logging.log_every_n(logging.WARNING, "%s; sample dropped.", 100, reason)
    return observation, label, reason is None


def render_serially(simulator, latents, render_timeout_s: float | None = None):
    """Renders latents one after another in a plain Python loop, without building a `tf.data` map.

    Each latent is handed to `render` as numpy arrays, exactly as `tf.numpy_function`
    hands them in the in-process `tf.data` map, so both give identical results.

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
        observations[index], labels[index], valid[index] = render_one_logged(simulator, latent, render_timeout_s)
    return observations, labels, valid
