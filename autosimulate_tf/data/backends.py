"""Render backends: where a Python/numpy renderer runs, chosen by one gin binding.

The simulator class and the gin file stay the same; one line picks the backend that
`autosimulate_tf.data.render_latents` (and so the trainer, the baselines and the
sample pictures) uses:

    render_latents.backend = @InProcessBackend()     # the default: tf.data threads
    render_latents.backend = @ProcessPoolBackend()   # local worker processes
    render_latents.backend = @RayBackend()           # Ray (pip install 'autosimulate_tf[ray]')

Latents and seeds stay on the driver (`simulator.sample_latents` runs before any
backend sees them) and every backend renders each latent with the same
`pipeline.render_one_numpy`, so the rendered data, including which samples are
invalid, are identical whichever backend renders them. Invalid samples (the render
raised, returned NaN/Inf or a wrong shape, timed out, or its worker died) come back
as `valid = False` rows of finite placeholders; `pipeline.keep_valid` and the
trainer's `max_failure_rate` then drop and count them as usual.

Renderers written in TF ops (`render_with_tf_ops = True`) always run as one compiled
`tf.vectorized_map` in the driver, whatever the backend: shipping TF graphs to other
processes would cost more than it saves.

The process and Ray backends ship the simulator by pickling it; `Simulator`
pickles without its psi (see `simulators/base.py`), so `render` must depend only on
its latent.
"""

import atexit
import collections
import hashlib
import math
import multiprocessing
import os
import pickle
import signal
import threading
import time
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from autosimulate_tf.data import pipeline

# Chunks per worker and call when `chunk_size` is None: several, so a slow chunk does not
# leave the other workers idle at the end, but few, so per-chunk overhead stays small.
_CHUNKS_PER_WORKER = 4
_MAX_AUTO_CHUNK_SIZE = 64
# Worker start-up (spawning a process and importing TensorFlow: seconds) is waited for
# before any chunk deadline starts, up to this long.
_STARTUP_TIMEOUT_S = 300.0


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


@gin.configurable
class InProcessBackend(RenderBackend):
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
        """
        if num_parallel_calls != tf.data.AUTOTUNE and num_parallel_calls < 1:
            raise ValueError(f"InProcessBackend.num_parallel_calls={num_parallel_calls} must be >= 1 or AUTOTUNE.")
        if parallel_min_batch < 0:
            raise ValueError(f"InProcessBackend.parallel_min_batch={parallel_min_batch} must be >= 0.")
        self.num_parallel_calls = num_parallel_calls
        self.parallel_min_batch = parallel_min_batch

    def render(self, simulator, latents, timeout_s: float | None = None):
        """See `RenderBackend.render`."""
        num_samples = int(tf.nest.flatten(latents)[0].shape[0])
        if num_samples < self.parallel_min_batch:
            return pipeline.render_serially(simulator, latents, timeout_s)
        rendered = pipeline.render_in_process(simulator, latents, self.num_parallel_calls, timeout_s)
        return rendered.inputs.numpy(), rendered.labels.numpy(), rendered.valid.numpy()


# ---------------------------------------------------------------------------------------
# Worker side, shared by the process pool and Ray: render one chunk of latents.


class _RenderAlarm(BaseException):
    """Raised by SIGALRM inside a worker's render. A BaseException, so `except Exception` in a render cannot eat it."""


def _render_with_alarm(simulator, latent, timeout_s):
    """`render_one_numpy`, with a hung render interrupted by SIGALRM rather than abandoned in a thread.

    In a worker's main thread a signal stops a pure-Python or sleeping render for
    real (no thread left spinning), and the sample is invalid exactly as
    `render_one_numpy`'s thread timeout makes it in-process. A render stuck in C
    code that holds the GIL cannot be interrupted; the driver's chunk deadline kills
    that worker.
    """
    if timeout_s is None or threading.current_thread() is not threading.main_thread():
        return pipeline.render_one_numpy(simulator, latent, timeout_s)
    armed = [True]

    def on_alarm(signum, frame):
        if armed[0]:
            raise _RenderAlarm()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            result = pipeline.render_one_numpy(simulator, latent, None)
        finally:
            armed[0] = False  # An alarm delivered from here on is ignored.
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _RenderAlarm:
        reason = f"{type(simulator).__name__}.render did not finish within render_timeout_s={timeout_s}"
        result = (*pipeline.placeholder_sample(simulator), reason)
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
        observation, label, reason = _render_with_alarm(simulator, latent, timeout_s)
        observations.append(observation)
        labels.append(label)
        reasons.append(reason)
    valid = np.array([reason is None for reason in reasons], dtype=bool)
    return np.stack(observations), np.stack(labels), valid, reasons


class RenderWorkerError(RuntimeError):
    """A worker could not set up rendering at all (e.g. the simulator did not unpickle there)."""


_WORKER_SIMULATORS = collections.OrderedDict()  # In each worker: payload key -> (simulator, structure).


def _worker_simulator(key, load):
    """The unpickled `(simulator, structure)` of payload `key`, unpickled once per worker and call."""
    if key not in _WORKER_SIMULATORS:
        try:
            _WORKER_SIMULATORS[key] = load()
        except Exception as error:
            raise RenderWorkerError(f"the simulator could not be unpickled in a render worker: {error!r}") from error
        while len(_WORKER_SIMULATORS) > 2:
            _WORKER_SIMULATORS.popitem(last=False)
    return _WORKER_SIMULATORS[key]


def _pool_worker_init():
    # Ctrl-C reaches the whole process group; the driver handles it (and kills the pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_ping(hold_s: float = 0.0):
    time.sleep(hold_s)
    return os.getpid()


def _pool_render_chunk(key, payload, flat_latents, timeout_s):
    simulator, structure = _worker_simulator(key, lambda: pickle.loads(payload))
    return render_chunk(simulator, structure, flat_latents, timeout_s)


# ---------------------------------------------------------------------------------------
# Driver side helpers.


def _flat_numpy(latents):
    """`(structure, flat numpy leaves, n)` of a batch of latents."""
    flat = [np.asarray(leaf) for leaf in tf.nest.flatten(latents)]
    structure = tf.nest.map_structure(lambda _: None, latents)
    return structure, flat, (int(flat[0].shape[0]) if flat else 0)


def _chunk_bounds(num_samples: int, chunk_size: int | None, num_workers: int) -> list[tuple[int, int]]:
    if chunk_size is None:
        chunk_size = min(_MAX_AUTO_CHUNK_SIZE, max(1, math.ceil(num_samples / (_CHUNKS_PER_WORKER * num_workers))))
    return [(start, min(num_samples, start + chunk_size)) for start in range(0, num_samples, chunk_size)]


def _deadline_s(timeout_s, chunk_length, grace_s):
    return None if timeout_s is None else timeout_s * chunk_length + grace_s


def _assemble(simulator, bounds, results, num_samples):
    """Stacks per-chunk results in latent order; a missing chunk (None) becomes invalid placeholders."""
    observation, label = pipeline.placeholder_sample(simulator)
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


def _empty(simulator):
    observation, label = pipeline.placeholder_sample(simulator)
    return (
        np.zeros((0, *observation.shape), observation.dtype),
        np.zeros((0, *label.shape), label.dtype),
        np.zeros([0], bool),
    )


def _check_common(owner, chunk_size, max_retries, grace_s):
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"{owner}.chunk_size={chunk_size} must be >= 1 (or None for automatic).")
    if max_retries < 0:
        raise ValueError(f"{owner}.max_retries={max_retries} must be >= 0.")
    if grace_s < 0:
        raise ValueError(f"{owner}.deadline_grace_s={grace_s} must be >= 0.")


# ---------------------------------------------------------------------------------------
# Local process pool.


class _WorkerPool:
    """One lazily started `ProcessPoolExecutor`, shared by every `ProcessPoolBackend` with the same settings."""

    def __init__(self, num_workers: int, start_method: str):
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
                _kill_executor(executor)
                raise
            self.executor = executor
            self.starts += 1
            self.last_startup_s = time.perf_counter() - begin
        return self.executor

    def _warm_up(self, executor):
        # Workers spawn and import TensorFlow (seconds each). Wait until every one has
        # answered, so no chunk deadline ever includes a worker's start-up.
        seen, limit = set(), time.monotonic() + _STARTUP_TIMEOUT_S
        pending = {executor.submit(_pool_ping, 0.05) for _ in range(self.num_workers)}
        while len(seen) < self.num_workers:
            remaining = limit - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"ProcessPoolBackend workers did not start within {_STARTUP_TIMEOUT_S} s.")
            done, pending = futures.wait(pending, timeout=remaining, return_when=futures.FIRST_COMPLETED)
            for future in done:
                seen.add(future.result())  # Raises BrokenProcessPool if a worker could not start.
            # Keep pings queued until the slowest worker has taken one.
            while len(seen) < self.num_workers and len(pending) < self.num_workers:
                pending.add(executor.submit(_pool_ping, 0.05))
        futures.wait(pending)

    def kill(self):
        """Kills the workers now (hung or dead ones included); the next `started()` spawns new ones."""
        executor, self.executor = self.executor, None
        if executor is not None:
            _kill_executor(executor)

    def shutdown(self):
        """Stops idle workers cleanly."""
        executor, self.executor = self.executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _kill_executor(executor):
    # ProcessPoolExecutor cannot cancel a running task; killing its processes is the only way
    # to stop a hung render. `_processes` is private but present since Python 3.3.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.kill()
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=10)


_POOLS: dict[tuple, _WorkerPool] = {}
_POOLS_LOCK = threading.Lock()


def _shared_pool(num_workers: int, start_method: str) -> _WorkerPool:
    key = (os.getpid(), num_workers, start_method)  # A forked driver must not reuse its parent's pool.
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = _WorkerPool(num_workers, start_method)
        return _POOLS[key]


@atexit.register
def _shut_down_pools():
    for pool in list(_POOLS.values()):
        try:
            pool.kill() if pool.lock.locked() else pool.shutdown()
        except Exception:  # Best effort at interpreter exit.
            pass


@gin.configurable
class ProcessPoolBackend(RenderBackend):
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
        """
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(
                f"ProcessPoolBackend.start_method={start_method!r} must be 'spawn' or 'forkserver' "
                "('fork' is unsafe with TensorFlow)."
            )
        num_workers = int(num_workers or os.cpu_count() or 1)
        if num_workers < 1:
            raise ValueError(f"ProcessPoolBackend.num_workers={num_workers} must be >= 1.")
        _check_common("ProcessPoolBackend", chunk_size, max_retries, deadline_grace_s)
        self.num_workers = num_workers
        self.chunk_size = chunk_size
        self.max_retries = int(max_retries)
        self.start_method = start_method
        self.deadline_grace_s = float(deadline_grace_s)

    @property
    def pool(self) -> _WorkerPool:
        """The shared worker pool of these settings (started lazily)."""
        return _shared_pool(self.num_workers, self.start_method)

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
        structure, flat, num_samples = _flat_numpy(latents)
        if num_samples == 0:
            return _empty(simulator)
        try:
            payload = pickle.dumps((simulator, structure), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            raise TypeError(
                f"ProcessPoolBackend ships the simulator to its workers by pickling it, and "
                f"{type(simulator).__name__} cannot be pickled: {error!r}. Define the simulator class at module "
                "top level and keep unpicklable objects out of the attributes render needs."
            ) from error
        key = hashlib.sha1(payload).hexdigest()
        bounds = _chunk_bounds(num_samples, self.chunk_size, self.num_workers)
        chunks = [[leaf[start:stop] for leaf in flat] for start, stop in bounds]
        pool = self.pool
        with pool.lock:
            try:
                results = self._render_chunks(pool, key, payload, chunks, bounds, timeout_s)
            except BaseException:
                pool.kill()  # Interrupted (Ctrl-C) or failed mid-call: leave no worker busy.
                raise
        return _assemble(simulator, bounds, results, num_samples)

    def _render_chunks(self, pool, key, payload, chunks, bounds, timeout_s):
        results = [None] * len(chunks)
        pending = collections.deque(range(len(chunks)))
        suspects = collections.deque()  # Chunks running when a worker died: re-run alone.
        lone_deaths = [0] * len(chunks)
        # With deadlines, never queue more chunks than there are workers: a queued chunk's
        # clock would run while it waits. Without, keep the workers fed.
        capacity = self.num_workers if timeout_s is not None else 2 * self.num_workers
        running = {}  # future -> (chunk index, deadline, ran alone)

        def describe(index):
            start, stop = bounds[index]
            return f"samples [{start}, {stop})"

        def submit(queue, alone):
            """Submits the next chunk of `queue`; False (chunk requeued) when the pool is broken."""
            index = queue.popleft()
            try:
                future = executor.submit(_pool_render_chunk, key, payload, chunks[index], timeout_s)
            except BrokenProcessPool:
                queue.appendleft(index)
                return False
            deadline = _deadline_s(timeout_s, len(chunks[index][0]), self.deadline_grace_s)
            running[future] = (index, None if deadline is None else time.monotonic() + deadline, alone)
            return True

        while pending or suspects or running:
            executor = pool.started()
            if suspects:
                submitted = running or submit(suspects, alone=True)
            else:
                submitted = True
                while submitted and pending and len(running) < capacity:
                    submitted = submit(pending, alone=False)
            if not submitted and not running:
                # The pool broke while idle (e.g. the OOM killer took a worker between calls): restart it.
                logging.warning("ProcessPoolBackend: the worker pool was broken; restarting it.")
                pool.kill()
                continue

            deadlines = [deadline for _, deadline, _ in running.values() if deadline is not None]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            done, _ = futures.wait(list(running), timeout=wait_s, return_when=futures.FIRST_COMPLETED)

            died = []
            for future in done:
                index, _, alone = running.pop(future)
                try:
                    results[index] = future.result()
                    pool.chunks_rendered += 1
                except BrokenProcessPool:
                    died.append((index, alone))
                except RenderWorkerError as error:
                    raise RenderWorkerError(f"ProcessPoolBackend: {error}") from error
            if died:
                # Every other running chunk fails with the same BrokenProcessPool (or has just finished).
                futures.wait(list(running), timeout=30)
                for future, (index, _, alone) in list(running.items()):
                    try:
                        results[index] = future.result(timeout=0)
                    except Exception:
                        died.append((index, alone))
                running.clear()
                pool.kill()
                for index, alone in died:
                    if alone or len(died) == 1:  # The only chunk running: it killed the worker.
                        lone_deaths[index] += 1
                        if lone_deaths[index] > self.max_retries:
                            logging.warning(
                                "ProcessPoolBackend: a worker died rendering %s alone %d time(s); its samples are "
                                "marked invalid (max_retries=%d).",
                                describe(index),
                                lone_deaths[index],
                                self.max_retries,
                            )
                            continue
                    suspects.append(index)
                logging.warning(
                    "ProcessPoolBackend: a worker process died while rendering %s; pool restarted, re-running "
                    "those chunks one at a time.",
                    ", ".join(describe(index) for index, _ in died),
                )
                continue

            now = time.monotonic()
            expired = [
                future for future, (_, deadline, _) in running.items() if deadline is not None and now >= deadline
            ]
            if expired:
                for future in expired:
                    index, _, _ = running.pop(future)
                    logging.warning(
                        "ProcessPoolBackend: rendering %s exceeded its deadline of %.1f s (render_timeout_s=%s per "
                        "sample + %.1f s grace); worker processes killed and restarted, samples marked invalid.",
                        describe(index),
                        _deadline_s(timeout_s, len(chunks[index][0]), self.deadline_grace_s),
                        timeout_s,
                        self.deadline_grace_s,
                    )
                pool.kill()
                # Chunks caught in the kill did nothing wrong: render them again.
                for future, (index, _, alone) in running.items():
                    try:
                        results[index] = future.result(timeout=0)
                    except Exception:
                        (suspects if alone else pending).appendleft(index)
                running.clear()
        return results


# ---------------------------------------------------------------------------------------
# Ray.

_RAY = {"started_here": False, "remote": None, "warm": False}


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "RayBackend needs the optional dependency `ray`: pip install 'autosimulate_tf[ray]' "
            "(or pip install 'ray>=2.40,<3')."
        ) from error
    return ray


def _ray_ping(hold_s: float = 0.0):
    time.sleep(hold_s)
    return os.getpid()


def _ray_render_chunk(payload_refs, flat_latents, timeout_s):
    import ray

    # The payload ref arrives inside a list so Ray does not resolve it per task: each worker
    # fetches and unpickles the simulator once per call.
    ref = payload_refs[0]
    simulator, structure = _worker_simulator(ref.hex(), lambda: ray.get(ref))
    return render_chunk(simulator, structure, flat_latents, timeout_s)


@gin.configurable
class RayBackend(RenderBackend):
    """Renders with Ray tasks: on this machine (a local Ray instance) or on a Ray cluster.

    Needs the optional extra: `pip install 'autosimulate_tf[ray]'`. Ray is imported
    and initialised (`ray.init(address=address, ...)`) on the first `render`, once
    per process; an already initialised Ray is used as it is. Each call puts the
    simulator (pickled without psi) in the object store once and submits chunks of
    `chunk_size` latents as tasks of `num_cpus_per_task` CPUs. The workers render
    with the same `render_one_numpy` as the in-process backend, so the results are
    identical. Failure handling:

    - A render that raises or returns NaN/Inf or a wrong shape, or exceeds
      `timeout_s` (interrupted in the worker by SIGALRM): that sample is invalid.
    - A worker that dies: Ray retries the task up to `max_retries` times, then its
      samples are invalid.
    - A chunk exceeding its deadline `timeout_s * len(chunk) + deadline_grace_s`:
      the task is cancelled with `ray.cancel(force=True)` (killing its worker) and
      its samples are invalid.

    Every dropped chunk logs a warning naming the reason. Simulator classes must be
    importable on the Ray workers (installed packages are; for a cluster, ship your
    code with Ray's `runtime_env` through `init_kwargs`).
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus_per_task: float = 1,
        chunk_size: int | None = None,
        max_retries: int = 1,
        init_kwargs: dict | None = None,
        deadline_grace_s: float = 10.0,
    ):
        """Args:
        address: Ray cluster address (`"auto"`, `"ray://host:10001"`, ...); None
          starts a local instance (or connects to `RAY_ADDRESS` if set, as Ray does).
        num_cpus_per_task: CPUs Ray reserves per render task.
        chunk_size: latents per task (None: about four chunks per worker and call,
          at most 64).
        max_retries: Ray's task retries after a worker dies.
        init_kwargs: extra `ray.init` arguments. A local instance defaults to
          `include_dashboard=False, log_to_driver=False` (workers' TF start-up
          chatter stays in Ray's log files; render failures are reported by the
          driver anyway) and Ray's own `num_cpus` (all cores).
        deadline_grace_s: added to a chunk's deadline for scheduling and shipping,
          and for Ray's own retries after a worker death (the retry runs on a new
          worker that imports TensorFlow first, within the original deadline).
        """
        if num_cpus_per_task <= 0:
            raise ValueError(f"RayBackend.num_cpus_per_task={num_cpus_per_task} must be > 0.")
        _check_common("RayBackend", chunk_size, max_retries, deadline_grace_s)
        self.address = address
        self.num_cpus_per_task = num_cpus_per_task
        self.chunk_size = chunk_size
        self.max_retries = int(max_retries)
        self.init_kwargs = dict(init_kwargs or {})
        self.deadline_grace_s = float(deadline_grace_s)

    def _ray(self):
        ray = _import_ray()
        if not ray.is_initialized():
            kwargs = dict(self.init_kwargs)
            if self.address is None:
                kwargs.setdefault("include_dashboard", False)
                kwargs.setdefault("log_to_driver", False)
            kwargs.setdefault("logging_level", "warning")
            ray.init(address=self.address, **kwargs)
            _RAY.update(started_here=True, warm=False)
        if _RAY["remote"] is None:
            _RAY["remote"] = ray.remote(_ray_render_chunk)
        return ray

    def _capacity(self, ray) -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 1) // self.num_cpus_per_task))

    def _pings(self, ray):
        # Each Ray worker imports TensorFlow on its first task (seconds). Pings that hold their
        # CPU briefly land on distinct workers and make every one import it.
        ping = ray.remote(_ray_ping).options(num_cpus=self.num_cpus_per_task)
        return [ping.remote(0.2) for _ in range(self._capacity(ray))]

    def _ensure_warm(self, ray):
        """Blocks until every worker is warm, so no chunk deadline includes a worker's start-up."""
        if not _RAY["warm"]:
            ray.get(self._pings(ray), timeout=_STARTUP_TIMEOUT_S)
            _RAY["warm"] = True

    def warm_up(self) -> float:
        """Initialises Ray and warms its workers now (otherwise the first `render` does); returns the seconds taken."""
        begin = time.perf_counter()
        self._ensure_warm(self._ray())
        return time.perf_counter() - begin

    def close(self) -> None:
        """Shuts Ray down if this module started it (a Ray initialised by the caller is left running)."""
        if _RAY["started_here"]:
            ray = _import_ray()
            ray.shutdown()
        _RAY.update(started_here=False, remote=None, warm=False)

    def render(self, simulator, latents, timeout_s: float | None = None):
        """See `RenderBackend.render`."""
        ray = self._ray()
        structure, flat, num_samples = _flat_numpy(latents)
        if num_samples == 0:
            return _empty(simulator)
        if timeout_s is not None:
            self._ensure_warm(ray)
        capacity = self._capacity(ray)
        bounds = _chunk_bounds(num_samples, self.chunk_size, capacity)
        payload_ref = ray.put((simulator, structure))
        remote = _RAY["remote"].options(num_cpus=self.num_cpus_per_task, max_retries=self.max_retries)
        results = [None] * len(bounds)
        pending = collections.deque(range(len(bounds)))
        running = {}  # ObjectRef -> (chunk index, deadline)
        warming = []  # Pings after a worker was lost: no chunk is submitted until they are back.
        # With deadlines, never have more tasks than free CPUs: a queued task's clock would run.
        limit = capacity if timeout_s is not None else 2 * capacity

        def lost_a_worker():
            nonlocal warming
            _RAY["warm"] = False
            if timeout_s is not None:
                # Its replacement imports TensorFlow first: that must not count against a chunk's deadline.
                # Added to, not replacing, pings still out from an earlier loss: one of those may still
                # be starting a worker, and a chunk queued behind it would miss its deadline.
                warming = warming + self._pings(ray)

        try:
            while pending or running:
                if warming:
                    _, warming = ray.wait(warming, num_returns=len(warming), timeout=0)
                    _RAY["warm"] = not warming
                while pending and len(running) < limit and not warming:
                    index = pending.popleft()
                    start, stop = bounds[index]
                    ref = remote.remote([payload_ref], [leaf[start:stop] for leaf in flat], timeout_s)
                    deadline = _deadline_s(timeout_s, stop - start, self.deadline_grace_s)
                    running[ref] = (index, None if deadline is None else time.monotonic() + deadline)
                deadlines = [deadline for _, deadline in running.values() if deadline is not None]
                wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                ready, _ = ray.wait(list(running) + warming, num_returns=1, timeout=wait_s)
                for ref in ready:
                    if ref not in running:
                        continue  # A ping: collected at the top of the loop.
                    index, _ = running.pop(ref)
                    start, stop = bounds[index]
                    try:
                        results[index] = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        if isinstance(error.cause, RenderWorkerError):
                            raise RenderWorkerError(f"RayBackend: {error.cause}") from error
                        raise
                    except ray.exceptions.RayError as error:
                        logging.warning(
                            "RayBackend: rendering samples [%d, %d) failed after %d retries (%s); samples marked "
                            "invalid.",
                            start,
                            stop,
                            self.max_retries,
                            type(error).__name__,
                        )
                        lost_a_worker()
                now = time.monotonic()
                for ref, (index, deadline) in list(running.items()):
                    if deadline is not None and now >= deadline:
                        running.pop(ref)
                        ray.cancel(ref, force=True)
                        start, stop = bounds[index]
                        logging.warning(
                            "RayBackend: rendering samples [%d, %d) exceeded its deadline of %.1f s "
                            "(render_timeout_s=%s per sample + %.1f s grace); task cancelled (worker killed), samples "
                            "marked invalid.",
                            start,
                            stop,
                            _deadline_s(timeout_s, stop - start, self.deadline_grace_s),
                            timeout_s,
                            self.deadline_grace_s,
                        )
                        lost_a_worker()
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)  # Interrupted: leave no task running.
            raise
        return _assemble(simulator, bounds, results, num_samples)
