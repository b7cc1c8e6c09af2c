"""What runs inside a process-pool or Ray worker: render one chunk of latents, answer a ping.

The functions here are module-level so that a process pool can pickle them by
qualified name. A worker renders each latent with `rendering.render_one_numpy`, as the
in-process backend does, but stops a hung Python render with SIGALRM instead of
abandoning it in a thread.
"""

import collections
import os
import signal
import threading
import time

import numpy as np
import tensorflow as tf

from autosimulate_tf.data import rendering


class RenderWorkerError(RuntimeError):
    """A worker could not set up rendering at all (e.g. the simulator did not unpickle there)."""


class _RenderAlarm(BaseException):
    """Raised by SIGALRM inside a worker's render. A BaseException, so `except Exception` in a render cannot eat it."""


def render_with_alarm(simulator, latent, timeout_s: float | None):
    """`render_one_numpy`, with a hung render interrupted by SIGALRM rather than abandoned in a thread.

    In a worker's main thread a signal stops a pure-Python or sleeping render for
    real (no thread left spinning), and the sample is invalid exactly as
    `render_one_numpy`'s thread timeout makes it in-process. A render stuck in C
    code that holds the GIL cannot be interrupted; the driver's chunk deadline kills
    that worker.
    """
    if timeout_s is None or threading.current_thread() is not threading.main_thread():
        return rendering.render_one_numpy(simulator, latent, timeout_s)
    armed = [True]

    def on_alarm(signum, frame):
        if armed[0]:
            raise _RenderAlarm()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            result = rendering.render_one_numpy(simulator, latent, None)
        finally:
            armed[0] = False  # An alarm delivered from here on is ignored.
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _RenderAlarm:
        reason = f"{type(simulator).__name__}.render did not finish within render_timeout_s={timeout_s}"
        result = (*rendering.placeholder_sample(simulator), reason)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return result


def render_chunk(simulator, structure, flat_latents, timeout_s: float | None = None):
    """Renders the latents of one chunk, one by one, as `render_latents` would in-process.

    Args:
      simulator: the (unpickled) simulator.
      structure: the nest structure of one latent (leaves ignored).
      flat_latents: the flattened latents of the chunk, each `[k, ...]`.
      timeout_s: per-sample render limit (None: no limit).

    Returns:
      `(observations [k, ...], labels [k, ...], valid [k], reasons)`; `reasons[i]`
      says why sample i is invalid (None when valid).
    """
    observations, labels, reasons = [], [], []
    for index in range(len(flat_latents[0])):
        # One 0-d or row array per leaf, as tf.numpy_function hands them to the in-process render.
        latent = tf.nest.pack_sequence_as(structure, [np.array(leaf[index]) for leaf in flat_latents])
        observation, label, reason = render_with_alarm(simulator, latent, timeout_s)
        observations.append(observation)
        labels.append(label)
        reasons.append(reason)
    valid = np.array([reason is None for reason in reasons], dtype=bool)
    return np.stack(observations), np.stack(labels), valid, reasons


_WORKER_SIMULATORS = collections.OrderedDict()  # In each worker: payload key -> (simulator, structure).


def worker_simulator(key, load):
    """The unpickled `(simulator, structure)` of payload `key`, unpickled once per worker and call.

    Raises:
      RenderWorkerError: when `load()` fails (the simulator does not unpickle here).
    """
    if key not in _WORKER_SIMULATORS:
        try:
            _WORKER_SIMULATORS[key] = load()
        except Exception as error:
            raise RenderWorkerError(f"the simulator could not be unpickled in a render worker: {error!r}") from error
        while len(_WORKER_SIMULATORS) > 2:
            _WORKER_SIMULATORS.popitem(last=False)
    return _WORKER_SIMULATORS[key]


def ping(hold_s: float = 0.0) -> int:
    """Holds the worker for `hold_s` seconds and returns its process id: proof that the worker is up.

    Pings that hold their worker briefly land on distinct workers, so a round of them
    makes every worker start (and import TensorFlow) before any chunk deadline runs.
    """
    time.sleep(hold_s)
    return os.getpid()
