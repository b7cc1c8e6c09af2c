"""Runs trials as local child processes, `parallel` at a time (the default backend: no cluster needed).

Ctrl-C (or SIGTERM) of the sweep sends one SIGINT to every running trial, which saves a
checkpoint and exits (recorded `interrupted`); trials not started yet are left for the
re-run. A second Ctrl-C forwards a second SIGINT, which stops the trials at once.

Resources: `cpus_per_trial` caps each trial's TF and OpenMP thread pools
(`TF_NUM_INTRAOP_THREADS`, `OMP_NUM_THREADS`); `gpus_per_trial` hands each trial its own
GPUs through `CUDA_VISIBLE_DEVICES` (0 hides every GPU; a fraction such as 0.5 puts that many
trials on one GPU), and a trial waits until enough are free.
"""

import concurrent.futures
import contextlib
import math
import os
import signal
import threading

from autosimulate_tf.errors import check
from autosimulate_tf.sweeps import trial_runner


class _Children:
    """The running trials, so that an interrupt of the sweep reaches each of them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._trials = set()
        self.stopping = False

    def add(self, trial: trial_runner.RunningTrial) -> None:
        with self._lock:
            self._trials.add(trial)
            if self.stopping:  # Started while the interrupt was being forwarded.
                trial.interrupt()

    def discard(self, trial: trial_runner.RunningTrial) -> None:
        with self._lock:
            self._trials.discard(trial)

    def interrupt_all(self) -> None:
        with self._lock:
            self.stopping = True
            for trial in self._trials:
                trial.interrupt()


class GpuSlots:
    """Hands GPU ids to running trials, `gpus_per_trial` each; a fraction shares one GPU between trials."""

    def __init__(self, gpu_ids, gpus_per_trial: float):
        gpu_ids = list(gpu_ids)
        check(gpus_per_trial > 0, f"--gpus_per_trial={gpus_per_trial} must be > 0 to hand out GPUs.")
        if gpus_per_trial < 1:
            # Interleaved, so that trials spread over the GPUs before sharing one.
            self._free = [gpu for _ in range(math.floor(1 / gpus_per_trial + 1e-9)) for gpu in gpu_ids]
            self._take = 1
        else:
            check(float(gpus_per_trial).is_integer(), f"--gpus_per_trial={gpus_per_trial}: above 1, a whole number.")
            self._free, self._take = gpu_ids, int(gpus_per_trial)
        check(
            bool(gpu_ids) and len(gpu_ids) >= self._take,
            f"--gpus_per_trial={gpus_per_trial} but only {len(gpu_ids)} GPU(s) are visible here.",
        )
        self._condition = threading.Condition()

    def acquire(self) -> list[str]:
        """Waits until enough GPUs are free and takes them."""
        with self._condition:
            self._condition.wait_for(lambda: len(set(self._free)) >= self._take)
            taken = []
            for gpu in list(self._free):
                if len(taken) < self._take and gpu not in taken:
                    taken.append(gpu)
                    self._free.remove(gpu)
            return taken

    def release(self, gpus) -> None:
        """Gives back what `acquire` took."""
        with self._condition:
            self._free.extend(gpus)
            self._condition.notify_all()


def visible_gpu_ids() -> list[str]:
    """The GPUs this process may use, as `CUDA_VISIBLE_DEVICES` names them."""
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [name.strip() for name in visible.split(",") if name.strip()] if visible else [str(i) for i in range(count)]
    return names[:count]


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """A SIGTERM (batch schedulers, `kill`) stops the sweep as Ctrl-C does."""

    def interrupt(signum, frame):
        del signum, frame
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # Not the main thread: leave signals alone.
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_local(jobs, parallel: int = 1, cpus_per_trial=None, gpus_per_trial=None) -> tuple[list[dict], bool]:
    """Runs `jobs` in child processes, at most `parallel` at once.

    Args:
      jobs: `trial_runner.TrialJob`s.
      parallel: trials at once.
      cpus_per_trial: thread pools of each trial capped to this many cores; None: no cap.
      gpus_per_trial: GPUs per trial (0: none, hidden; a fraction shares one); None: every
        trial sees every GPU.

    Returns:
      `(records, interrupted)`: the `trial.json` of every trial that started, and whether
      the sweep was interrupted (trials not started then have no record).
    """
    check(parallel >= 1, f"--parallel={parallel} must be >= 1.")
    children = _Children()
    base_environment = trial_runner.cpu_environment(cpus_per_trial)
    if gpus_per_trial == 0:
        base_environment["CUDA_VISIBLE_DEVICES"] = ""
    slots = GpuSlots(visible_gpu_ids(), gpus_per_trial) if gpus_per_trial else None

    def run_one(job):
        if children.stopping:
            return None
        gpus = slots.acquire() if slots else None
        environment = dict(base_environment, **({"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else {}))
        started = []
        try:
            if children.stopping:
                return None
            record = trial_runner.run_trial(
                job, environment, lambda trial: (started.append(trial), children.add(trial))
            )
            print(f"{record['name']}: {record['status']} after {record['duration_s']}s", flush=True)
            return record
        finally:
            for trial in started:
                children.discard(trial)
            if gpus:
                slots.release(gpus)

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool, _sigterm_as_interrupt():
        futures = [pool.submit(run_one, job) for job in jobs]
        interrupted = _wait_forwarding_interrupts(futures, children)
    records = [future.result() for future in futures]
    return [record for record in records if record is not None], interrupted


def _wait_forwarding_interrupts(futures, children: _Children) -> bool:
    """Waits for every future; each Ctrl-C on the way is forwarded to the running trials."""
    interrupted = False
    while True:
        try:
            concurrent.futures.wait(futures)
            return interrupted
        except KeyboardInterrupt:
            interrupted = True
            print("\nInterrupt: asking every running trial to save a checkpoint and stop.", flush=True)
            children.interrupt_all()
