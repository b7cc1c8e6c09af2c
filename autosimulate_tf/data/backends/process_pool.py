"""The process-pool render backend: real parallelism for GIL-bound Python renderers on this machine."""

import collections
import hashlib
import os
import pickle
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool

import gin
from absl import logging

from autosimulate_tf.data.backends import base, scheduler, worker, worker_pool
from autosimulate_tf.errors import check


def _pool_render_chunk(key, payload, flat_latents, timeout_s):
    """Worker side: unpickles the simulator of payload `key` (once per worker and call) and renders a chunk."""
    simulator, structure = worker.worker_simulator(key, lambda: pickle.loads(payload))
    return worker.render_chunk(simulator, structure, flat_latents, timeout_s)


@gin.configurable(module="autosimulate_tf.data.backends")
class ProcessPoolBackend(base.RenderBackend):
    """Renders in a pool of local worker processes: real parallelism for GIL-bound Python renderers.

    The pool is started on the first `render` (spawning `num_workers` processes that
    each import TensorFlow: seconds) and then reused by every call and every
    instance with the same `num_workers` and `start_method`, until `close()` or
    interpreter exit. Workers are started with `spawn` (or `forkserver`), never
    `fork`: TensorFlow is not fork-safe.

    Each call pickles the simulator once (without psi) and hands chunks of
    `chunk_size` latents to the workers, which render them with the same
    `render_one_numpy` as the in-process backend, so the results are identical.
    Failure handling:

    - A render that raises or returns NaN/Inf or a wrong shape: that sample is
      invalid (as in-process).
    - A render exceeding `timeout_s`: interrupted inside the worker (SIGALRM) and
      that sample is invalid (as in-process, but nothing is left running).
    - A chunk exceeding its deadline `timeout_s * len(chunk) + deadline_grace_s`
      (a render stuck in C code that holds the GIL): the pool's processes are
      killed and restarted, the chunk's samples are invalid (a hang is not
      retried), the other unfinished chunks are rendered again.
    - A worker that dies (segfault, `os._exit`, out of memory): the pool is
      restarted; the chunks that were running are re-run one at a time to find the
      culprit. A chunk whose worker dies while it runs alone is retried up to
      `max_retries` times, then its samples are invalid. Every other chunk is
      rendered normally.

    Each restart logs a warning naming the reason and costs a worker start-up.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        chunk_size: int | None = None,
        max_retries: int = 1,
        start_method: str = "spawn",
        deadline_grace_s: float = 2.0,
    ):
        """Args:
        num_workers: worker processes (None: `os.cpu_count()`).
        chunk_size: latents per task (None: about four chunks per worker and call,
          at most 64). Smaller chunks balance load better and lose less when a
          worker dies; larger ones cost less overhead per sample.
        max_retries: extra runs of a chunk whose worker died when it ran alone.
        start_method: `"spawn"` or `"forkserver"`.
        deadline_grace_s: added to a chunk's deadline for shipping and
          per-chunk overhead.

        Raises:
          ConfigError: naming the binding of a setting out of range.
        """
        check(
            start_method in ("spawn", "forkserver"),
            f"ProcessPoolBackend.start_method={start_method!r} must be 'spawn' or 'forkserver' "
            "('fork' is unsafe with TensorFlow).",
        )
        num_workers = int(num_workers or os.cpu_count() or 1)
        check(num_workers >= 1, f"ProcessPoolBackend.num_workers={num_workers} must be >= 1.")
        base.check_chunk_settings("ProcessPoolBackend", chunk_size, max_retries, deadline_grace_s)
        self.num_workers = num_workers
        self.chunk_size = chunk_size
        self.max_retries = int(max_retries)
        self.start_method = start_method
        self.deadline_grace_s = float(deadline_grace_s)

    @property
    def pool(self) -> worker_pool.WorkerPool:
        """The shared worker pool of these settings (started lazily)."""
        return worker_pool.shared_pool(self.num_workers, self.start_method)

    def warm_up(self) -> float:
        """Starts the workers now (otherwise the first `render` does); returns the seconds it took (0 if running)."""
        pool = self.pool
        with pool.lock:
            if pool.executor is not None:
                return 0.0
            pool.started()
            return pool.last_startup_s

    def close(self) -> None:
        """Shuts the shared pool of these settings down; a later `render` starts a new one."""
        pool = self.pool
        with pool.lock:
            pool.shutdown()

    def render(self, simulator, latents, timeout_s: float | None = None):
        """See `RenderBackend.render`."""
        structure, flat, num_samples = base.flat_numpy(latents)
        if num_samples == 0:
            return base.empty_result(simulator)
        payload = _pickled(simulator, structure)
        bounds = base.chunk_bounds(num_samples, self.chunk_size, self.num_workers)
        pool = self.pool
        with pool.lock:
            results = _PoolScheduler(self, pool, payload, flat, bounds, timeout_s).run()
        return base.assemble_chunks(simulator, bounds, results, num_samples)


def _pickled(simulator, structure) -> bytes:
    """The payload every worker unpickles; a `TypeError` saying what to fix when the simulator does not pickle."""
    try:
        return pickle.dumps((simulator, structure), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise TypeError(
            f"ProcessPoolBackend ships the simulator to its workers by pickling it, and "
            f"{type(simulator).__name__} cannot be pickled: {error!r}. Define the simulator class at module "
            "top level and keep unpicklable objects out of the attributes render needs."
        ) from error


class _PoolScheduler(scheduler.ChunkScheduler):
    """The chunk scheduler of one `ProcessPoolBackend.render` call.

    A dead worker breaks the whole `ProcessPoolExecutor`, so the chunks that were
    running then are suspects: after a restart they are re-run one at a time
    (`suspects`), and only a chunk whose worker dies while it runs alone counts
    against `max_retries`. An overrun kills the pool; the chunks caught in the kill
    are rendered again.
    """

    owner = "ProcessPoolBackend"
    overrun_consequence = "worker processes killed and restarted"

    def __init__(self, backend, pool, payload, flat, bounds, timeout_s):
        """Args:
        backend: the `ProcessPoolBackend` (its `max_retries`, `deadline_grace_s`).
        pool: its `WorkerPool`, whose lock the caller holds.
        payload: the pickled `(simulator, structure)`.
        flat: the flattened numpy latents of the whole batch.
        bounds: the chunks' `(start, stop)`.
        timeout_s: per-sample render limit (None: no limit).
        """
        super().__init__(bounds, timeout_s, backend.deadline_grace_s, backend.num_workers)
        self.pool = pool
        self.max_retries = backend.max_retries
        self.payload = payload
        self.key = hashlib.sha1(payload).hexdigest()
        self.chunks = [[leaf[start:stop] for leaf in flat] for start, stop in bounds]
        self.suspects = collections.deque()  # Chunks running when a worker died: re-run alone.
        self.lone_deaths = [0] * len(bounds)
        self.executor = None

    def _has_work(self) -> bool:
        return bool(self.pending or self.suspects or self.running)

    def _dispatch(self) -> bool:
        self.executor = self.pool.started()
        if self.suspects:
            submitted = bool(self.running) or self._submit(self.suspects, alone=True)
        else:
            submitted = self._fill()
        if not submitted and not self.running:
            # The pool broke while idle (e.g. the OOM killer took a worker between calls): restart it.
            logging.warning("ProcessPoolBackend: the worker pool was broken; restarting it.")
            self.pool.kill()
            return False
        return True

    def _start(self, index):
        try:
            return self.executor.submit(_pool_render_chunk, self.key, self.payload, self.chunks[index], self.timeout_s)
        except BrokenProcessPool:
            return None

    def _wait(self, timeout_s):
        done, _ = futures.wait(list(self.running), timeout=timeout_s, return_when=futures.FIRST_COMPLETED)
        return done

    def _fetch(self, handle):
        try:
            result = handle.result()
        except BrokenProcessPool as error:
            raise scheduler.WorkerLost("BrokenProcessPool") from error
        except worker.RenderWorkerError as error:
            raise worker.RenderWorkerError(f"ProcessPoolBackend: {error}") from error
        self.pool.chunks_rendered += 1
        return result

    def _harvest_running(self) -> list[scheduler.ChunkTask]:
        """Stores the results of running chunks that have finished; empties `running`, returns the others."""
        unfinished = []
        for handle, task in self.running.items():
            try:
                self.results[task.index] = handle.result(timeout=0)
            except Exception:
                unfinished.append(task)
        self.running.clear()
        return unfinished

    def _recover(self, lost):
        # Every other running chunk fails with the same BrokenProcessPool (or has just finished).
        futures.wait(list(self.running), timeout=30)
        died = [task for task, _ in lost] + self._harvest_running()
        self.pool.kill()
        for task in died:
            if task.alone or len(died) == 1:  # The only chunk running: it killed the worker.
                self.lone_deaths[task.index] += 1
                if self.lone_deaths[task.index] > self.max_retries:
                    logging.warning(
                        "ProcessPoolBackend: a worker died rendering %s alone %d time(s); its samples are "
                        "marked invalid (max_retries=%d).",
                        self.describe(task.index),
                        self.lone_deaths[task.index],
                        self.max_retries,
                    )
                    continue
            self.suspects.append(task.index)
        logging.warning(
            "ProcessPoolBackend: a worker process died while rendering %s; pool restarted, re-running "
            "those chunks one at a time.",
            ", ".join(self.describe(task.index) for task in died),
        )

    def _drop_overruns(self, overruns):
        for _, task in overruns:
            self._warn_overrun(task)
        self.pool.kill()
        # Chunks caught in the kill did nothing wrong: render them again.
        for task in self._harvest_running():
            (self.suspects if task.alone else self.pending).appendleft(task.index)

    def _abort(self):
        self.pool.kill()  # Interrupted (Ctrl-C) or failed mid-call: leave no worker busy.
