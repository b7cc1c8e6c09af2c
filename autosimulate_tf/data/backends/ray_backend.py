"""The Ray render backend: Python renderers as Ray tasks, on this machine or on a Ray cluster."""

import time

import gin
from absl import logging

from autosimulate_tf.data.backends import base, scheduler, worker
from autosimulate_tf.errors import check

_PING_HOLD_S = 0.2  # Long enough that one Ray worker cannot answer every warm-up ping.

# This process's Ray state: whether this module called `ray.init`, the remote render
# function, and whether every worker is known to have imported TensorFlow.
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


def _ray_render_chunk(payload_refs, flat_latents, timeout_s):
    """Worker side: fetches and unpickles the simulator (once per worker and call) and renders a chunk."""
    import ray

    # The payload ref arrives inside a list so Ray does not resolve it per task: each worker
    # fetches and unpickles the simulator once per call.
    ref = payload_refs[0]
    simulator, structure = worker.worker_simulator(ref.hex(), lambda: ray.get(ref))
    return worker.render_chunk(simulator, structure, flat_latents, timeout_s)


@gin.configurable(module="autosimulate_tf.data.backends")
class RayBackend(base.RenderBackend):
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

        Raises:
          ConfigError: naming the binding of a setting out of range.
        """
        check(num_cpus_per_task > 0, f"RayBackend.num_cpus_per_task={num_cpus_per_task} must be > 0.")
        base.check_chunk_settings("RayBackend", chunk_size, max_retries, deadline_grace_s)
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

    def pings(self, ray) -> list:
        """One warm-up ping per task slot; their refs.

        Each Ray worker imports TensorFlow on its first task (seconds). Pings that hold
        their CPU briefly land on distinct workers and make every one import it.
        """
        ping = ray.remote(worker.ping).options(num_cpus=self.num_cpus_per_task)
        return [ping.remote(_PING_HOLD_S) for _ in range(self._capacity(ray))]

    def _ensure_warm(self, ray):
        """Blocks until every worker is warm, so no chunk deadline includes a worker's start-up."""
        if not _RAY["warm"]:
            ray.get(self.pings(ray), timeout=base.STARTUP_TIMEOUT_S)
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
        structure, flat, num_samples = base.flat_numpy(latents)
        if num_samples == 0:
            return base.empty_result(simulator)
        if timeout_s is not None:
            self._ensure_warm(ray)
        capacity = self._capacity(ray)
        bounds = base.chunk_bounds(num_samples, self.chunk_size, capacity)
        payload_ref = ray.put((simulator, structure))
        results = _RayScheduler(self, ray, capacity, payload_ref, flat, bounds, timeout_s).run()
        return base.assemble_chunks(simulator, bounds, results, num_samples)


class _RayScheduler(scheduler.ChunkScheduler):
    """The chunk scheduler of one `RayBackend.render` call.

    Ray retries a task whose worker died by itself; a chunk that still fails, or
    overruns (its task is cancelled, killing the worker), is lost. A lost worker's
    replacement imports TensorFlow first, so with deadlines no chunk is started until
    warm-up pings have come back from every task slot.
    """

    owner = "RayBackend"
    overrun_consequence = "task cancelled (worker killed)"

    def __init__(self, backend, ray, capacity, payload_ref, flat, bounds, timeout_s):
        """Args:
        backend: the `RayBackend` (its task options, `deadline_grace_s`, warm-up pings).
        ray: the imported, initialised `ray` module.
        capacity: how many tasks the cluster runs at once.
        payload_ref: object ref of the `(simulator, structure)` put in the object store.
        flat: the flattened numpy latents of the whole batch.
        bounds: the chunks' `(start, stop)`.
        timeout_s: per-sample render limit (None: no limit).
        """
        super().__init__(bounds, timeout_s, backend.deadline_grace_s, capacity)
        self.backend = backend
        self.ray = ray
        self.remote = _RAY["remote"].options(num_cpus=backend.num_cpus_per_task, max_retries=backend.max_retries)
        self.payload_ref = payload_ref
        self.flat = flat
        self.warming = []  # Pings after a worker was lost: no chunk is submitted until they are back.

    def _dispatch(self) -> bool:
        if self.warming:
            _, self.warming = self.ray.wait(self.warming, num_returns=len(self.warming), timeout=0)
            _RAY["warm"] = not self.warming
        if not self.warming:
            self._fill()
        return True

    def _start(self, index):
        start, stop = self.bounds[index]
        return self.remote.remote([self.payload_ref], [leaf[start:stop] for leaf in self.flat], self.timeout_s)

    def _wait(self, timeout_s):
        ready, _ = self.ray.wait(list(self.running) + self.warming, num_returns=1, timeout=timeout_s)
        return ready

    def _fetch(self, handle):
        ray = self.ray
        try:
            return ray.get(handle)
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, worker.RenderWorkerError):
                raise worker.RenderWorkerError(f"RayBackend: {error.cause}") from error
            raise
        except ray.exceptions.RayError as error:
            raise scheduler.WorkerLost(type(error).__name__) from error

    def _lost_a_worker(self):
        _RAY["warm"] = False
        if self.timeout_s is not None:
            # Its replacement imports TensorFlow first: that must not count against a chunk's deadline.
            # Added to, not replacing, pings still out from an earlier loss: one of those may still
            # be starting a worker, and a chunk queued behind it would miss its deadline.
            self.warming = self.warming + self.backend.pings(self.ray)

    def _recover(self, lost):
        for task, error_name in lost:
            start, stop = self.bounds[task.index]
            logging.warning(
                "RayBackend: rendering samples [%d, %d) failed after %d retries (%s); samples marked invalid.",
                start,
                stop,
                self.backend.max_retries,
                error_name,
            )
            self._lost_a_worker()

    def _drop_overruns(self, overruns):
        for handle, task in overruns:
            self.ray.cancel(handle, force=True)
            self._warn_overrun(task)
            self._lost_a_worker()

    def _abort(self):
        for handle in self.running:
            self.ray.cancel(handle, force=True)  # Interrupted: leave no task running.
