"""Local worker processes for the process-pool backend: started once, warm before use, killable.

A `WorkerPool` wraps one `ProcessPoolExecutor` and is shared, through `shared_pool`,
by every `ProcessPoolBackend` with the same settings in this process. Its workers
ignore Ctrl-C (the driver handles it) and are all warm (spawned, TensorFlow imported)
before any chunk is handed out, so no chunk deadline includes a worker's start-up.
"""

import atexit
import multiprocessing
import os
import signal
import threading
import time
from concurrent import futures

from autosimulate_tf.data.backends import base, worker

_PING_HOLD_S = 0.05  # Long enough that one worker cannot answer every warm-up ping.


def _pool_worker_init():
    # Ctrl-C reaches the whole process group; the driver handles it (and kills the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerPool:
    """One lazily started `ProcessPoolExecutor`, shared by every `ProcessPoolBackend` with the same settings."""

    def __init__(self, num_workers: int, start_method: str):
        """Args:
        num_workers: worker processes.
        start_method: multiprocessing start method (`"spawn"` or `"forkserver"`).
        """
        self.num_workers = num_workers
        self.start_method = start_method
        self.lock = threading.Lock()  # One render at a time per pool: chunk deadlines assume idle workers.
        self.executor = None
        self.starts = 0  # How many times workers were started (1 + restarts).
        self.chunks_rendered = 0  # Chunks whose results came back, over the pool's lifetime.
        self.last_startup_s = None

    def started(self):
        """The running executor, started (and every worker warm) first if needed."""
        if self.executor is None:
            begin = time.perf_counter()
            executor = futures.ProcessPoolExecutor(
                max_workers=self.num_workers,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer=_pool_worker_init,
            )
            try:
                self._warm_up(executor)
            except BaseException:
                kill_executor(executor)
                raise
            self.executor = executor
            self.starts += 1
            self.last_startup_s = time.perf_counter() - begin
        return self.executor

    def _warm_up(self, executor):
        # Workers spawn and import TensorFlow (seconds each). Wait until every one has
        # answered, so no chunk deadline ever includes a worker's start-up.
        seen, limit = set(), time.monotonic() + base.STARTUP_TIMEOUT_S
        pending = {executor.submit(worker.ping, _PING_HOLD_S) for _ in range(self.num_workers)}
        while len(seen) < self.num_workers:
            remaining = limit - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"ProcessPoolBackend workers did not start within {base.STARTUP_TIMEOUT_S} s.")
            done, pending = futures.wait(pending, timeout=remaining, return_when=futures.FIRST_COMPLETED)
            for future in done:
                seen.add(future.result())  # Raises BrokenProcessPool if a worker could not start.
            # Keep pings queued until the slowest worker has taken one.
            while len(seen) < self.num_workers and len(pending) < self.num_workers:
                pending.add(executor.submit(worker.ping, _PING_HOLD_S))
        futures.wait(pending)

    def kill(self):
        """Kills the workers now (hung or dead ones included); the next `started()` spawns new ones."""
        executor, self.executor = self.executor, None
        if executor is not None:
            kill_executor(executor)

    def shutdown(self):
        """Stops idle workers cleanly."""
        executor, self.executor = self.executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def kill_executor(executor):
    """Kills the processes of a `ProcessPoolExecutor` and shuts it down without waiting for its tasks."""
    # ProcessPoolExecutor cannot cancel a running task; killing its processes is the only way
    # to stop a hung render. `_processes` is private but present since Python 3.3.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.kill()
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=10)


_POOLS: dict[tuple, WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(num_workers: int, start_method: str) -> WorkerPool:
    """This process's `WorkerPool` of these settings, created (not started) on first use."""
    key = (os.getpid(), num_workers, start_method)  # A forked driver must not reuse its parent's pool.
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = WorkerPool(num_workers, start_method)
        return _POOLS[key]


@atexit.register
def _shut_down_pools():
    for pool in list(_POOLS.values()):
        try:
            pool.kill() if pool.lock.locked() else pool.shutdown()
        except Exception:  # Best effort at interpreter exit.
            pass
