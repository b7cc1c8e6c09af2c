"""The render-backend interface and the chunking that the process and Ray backends share.

A chunked backend cuts a batch of latents into contiguous chunks (`chunk_bounds`),
renders each chunk in a worker with a deadline of `chunk_deadline_s`, and stacks the
chunks back in latent order (`assemble_chunks`), a lost chunk becoming invalid
placeholder rows.
"""

import math

import numpy as np
import tensorflow as tf
from absl import logging

from autosimulate_tf.data import rendering
from autosimulate_tf.errors import check

# Chunks per worker and call when `chunk_size` is None: several, so a slow chunk does not
# leave the other workers idle at the end, but few, so per-chunk overhead stays small.
_CHUNKS_PER_WORKER = 4
_MAX_AUTO_CHUNK_SIZE = 64
# Worker start-up (spawning a process and importing TensorFlow: seconds) is waited for
# before any chunk deadline starts, up to this long.
STARTUP_TIMEOUT_S = 300.0


class RenderBackend:
    """Interface of a render backend: `render` a batch of latents, `close` when done.

    Backends are cheap to construct: gin's `@ProcessPoolBackend()` builds a new
    instance on every `render_latents` call, so expensive resources (worker pools,
    Ray) live in module-level caches that instances share.
    """

    def render(self, simulator, latents, timeout_s: float | None = None):
        """Renders `latents` (a batch as returned by `simulator.sample_latents`) with a Python/numpy `render`.

        Args:
          simulator: a `Simulator`.
          latents: a nest of tensors or arrays with leading dimension n.
          timeout_s: a sample whose render takes longer is invalid (None: no limit).

        Returns:
          `(observations [n, ...], labels [n, ...], valid [n] bool)` numpy arrays in
          latent order; invalid rows hold finite placeholders.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Releases what the backend holds (no-op by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def check_chunk_settings(owner: str, chunk_size: int | None, max_retries: int, grace_s: float) -> None:
    """Raises `ConfigError` naming `owner`'s binding when a chunking setting is out of range."""
    check(
        chunk_size is None or chunk_size >= 1,
        f"{owner}.chunk_size={chunk_size} must be >= 1 (or None for automatic).",
    )
    check(max_retries >= 0, f"{owner}.max_retries={max_retries} must be >= 0.")
    check(grace_s >= 0, f"{owner}.deadline_grace_s={grace_s} must be >= 0.")


def flat_numpy(latents):
    """`(structure, flat numpy leaves, n)` of a batch of latents."""
    flat = [np.asarray(leaf) for leaf in tf.nest.flatten(latents)]
    structure = tf.nest.map_structure(lambda _: None, latents)
    return structure, flat, (int(flat[0].shape[0]) if flat else 0)


def chunk_bounds(num_samples: int, chunk_size: int | None, num_workers: int) -> list[tuple[int, int]]:
    """`[(start, stop), ...]` of consecutive chunks covering `num_samples` latents.

    With `chunk_size` None, about `_CHUNKS_PER_WORKER` chunks per worker, each of at
    most `_MAX_AUTO_CHUNK_SIZE` latents.
    """
    if chunk_size is None:
        chunk_size = min(_MAX_AUTO_CHUNK_SIZE, max(1, math.ceil(num_samples / (_CHUNKS_PER_WORKER * num_workers))))
    return [(start, min(num_samples, start + chunk_size)) for start in range(0, num_samples, chunk_size)]


def chunk_deadline_s(timeout_s: float | None, chunk_length: int, grace_s: float) -> float | None:
    """Seconds a chunk of `chunk_length` latents may take: `timeout_s` per sample plus `grace_s` (None: no limit)."""
    return None if timeout_s is None else timeout_s * chunk_length + grace_s


def assemble_chunks(simulator, bounds, results, num_samples: int):
    """Stacks per-chunk results in latent order; a missing chunk (None) becomes invalid placeholders.

    Each result is `render_chunk`'s `(observations, labels, valid, reasons)`; every
    invalid sample's reason is logged (rate-limited).
    """
    observation, label = rendering.placeholder_sample(simulator)
    observations = np.broadcast_to(observation, (num_samples, *observation.shape)).copy()
    labels = np.broadcast_to(label, (num_samples, *label.shape)).copy()
    valid = np.zeros([num_samples], dtype=bool)
    for (start, stop), result in zip(bounds, results, strict=True):
        if result is None:
            continue
        chunk_observations, chunk_labels, chunk_valid, reasons = result
        observations[start:stop] = chunk_observations
        labels[start:stop] = chunk_labels
        valid[start:stop] = chunk_valid
        for reason in reasons:
            if reason is not None:
                logging.log_every_n(logging.WARNING, "%s; sample dropped.", 100, reason)
    return observations, labels, valid


def empty_result(simulator):
    """The `(observations, labels, valid)` of a batch of zero latents."""
    observation, label = rendering.placeholder_sample(simulator)
    return (
        np.zeros((0, *observation.shape), observation.dtype),
        np.zeros((0, *label.shape), label.dtype),
        np.zeros([0], bool),
    )
