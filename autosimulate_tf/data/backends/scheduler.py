"""Dispatching chunks of latents to workers, each chunk within a deadline: the loop both chunked backends run.

`ChunkScheduler.run` keeps up to `capacity` chunks running, waits until one finishes
or the earliest deadline `timeout_s * len(chunk) + grace_s` passes, stores what came
back and hands the chunks of a lost or overrunning worker to the backend. With a
per-sample timeout it never has more chunks out than there are workers, so no chunk's
clock runs while it waits in a queue.

A backend subclasses it and says how a chunk is started (`_start`), waited for
(`_wait`) and fetched (`_fetch`, raising `WorkerLost` when the worker died), and
what it does about lost chunks (`_recover`), overruns (`_drop_overruns`) and an
interrupted call (`_abort`): the process pool restarts its pool and re-runs
suspects alone; Ray cancels tasks and re-warms its workers.
"""

import collections
import time
from typing import NamedTuple

from absl import logging

from autosimulate_tf.data.backends import base


class WorkerLost(Exception):
    """The worker of a chunk died before returning it; the message names what was seen."""


class ChunkTask(NamedTuple):
    """A running chunk: its index, its deadline (`time.monotonic()` seconds; None: none), whether it runs alone."""

    index: int
    deadline: float | None
    alone: bool


class ChunkScheduler:
    """Renders chunks on workers, at most `capacity` at a time, each within its deadline.

    Attributes:
      results: `results[i]` is chunk i's `render_chunk` result, or None while (or
        when, for good) it has none.
      pending: indices of the chunks waiting to be started, in order.
      running: handle (a future, a Ray object ref) -> `ChunkTask`.
    """

    owner = "ChunkScheduler"  # The backend's name: the first word of its warnings.
    overrun_consequence = "worker killed"  # What an overrun costs, as its warning says.

    def __init__(self, bounds, timeout_s: float | None, grace_s: float, num_workers: int):
        """Args:
        bounds: `[(start, stop), ...]` of the chunks (`base.chunk_bounds`).
        timeout_s: per-sample render limit (None: no limit, no deadlines).
        grace_s: added to every chunk's deadline.
        num_workers: how many chunks the workers can render at once.
        """
        self.bounds = bounds
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        # With deadlines, never have more chunks out than workers: a queued chunk's clock
        # would run while it waits. Without, keep the workers fed.
        self.capacity = num_workers if timeout_s is not None else 2 * num_workers
        self.results = [None] * len(bounds)
        self.pending = collections.deque(range(len(bounds)))
        self.running = {}

    def run(self) -> list:
        """Renders every chunk; returns `results` (None for a chunk that was lost for good).

        Raises:
          RenderWorkerError: when a worker cannot render at all. On any exception
            (Ctrl-C included) `_abort` leaves nothing running.
        """
        try:
            while self._has_work():
                if not self._dispatch():
                    continue
                self._collect(self._wait(self._seconds_to_next_deadline()))
                self._expire_overruns()
        except BaseException:
            self._abort()
            raise
        return self.results

    def describe(self, index: int) -> str:
        """`"samples [start, stop)"` of chunk `index`, as warnings name it."""
        start, stop = self.bounds[index]
        return f"samples [{start}, {stop})"

    # Bookkeeping shared by every backend.

    def _has_work(self) -> bool:
        return bool(self.pending or self.running)

    def _submit(self, queue: collections.deque, alone: bool) -> bool:
        """Starts the next chunk of `queue`; False (the chunk put back) when `_start` could not."""
        index = queue.popleft()
        handle = self._start(index)
        if handle is None:
            queue.appendleft(index)
            return False
        start, stop = self.bounds[index]
        deadline = base.chunk_deadline_s(self.timeout_s, stop - start, self.grace_s)
        self.running[handle] = ChunkTask(index, None if deadline is None else time.monotonic() + deadline, alone)
        return True

    def _fill(self) -> bool:
        """Starts pending chunks up to `capacity`; False when a start failed."""
        while self.pending and len(self.running) < self.capacity:
            if not self._submit(self.pending, alone=False):
                return False
        return True

    def _seconds_to_next_deadline(self) -> float | None:
        deadlines = [task.deadline for task in self.running.values() if task.deadline is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _collect(self, done) -> None:
        """Stores the results of the finished handles; hands the chunks of dead workers to `_recover`."""
        lost = []
        for handle in done:
            task = self.running.pop(handle, None)
            if task is None:
                continue  # Not a chunk (a warm-up ping).
            try:
                self.results[task.index] = self._fetch(handle)
            except WorkerLost as error:
                lost.append((task, str(error)))
        if lost:
            self._recover(lost)

    def _expire_overruns(self) -> None:
        """Takes the chunks past their deadline out of `running` and hands them to `_drop_overruns`."""
        now = time.monotonic()
        overruns = [
            (handle, task)
            for handle, task in self.running.items()
            if task.deadline is not None and now >= task.deadline
        ]
        for handle, _ in overruns:
            del self.running[handle]
        if overruns:
            self._drop_overruns(overruns)

    def _warn_overrun(self, task: ChunkTask) -> None:
        start, stop = self.bounds[task.index]
        logging.warning(
            "%s: rendering samples [%d, %d) exceeded its deadline of %.1f s (render_timeout_s=%s per sample + %.1f s "
            "grace); %s, samples marked invalid.",
            self.owner,
            start,
            stop,
            base.chunk_deadline_s(self.timeout_s, stop - start, self.grace_s),
            self.timeout_s,
            self.grace_s,
            self.overrun_consequence,
        )

    # What each backend says.

    def _dispatch(self) -> bool:
        """Starts chunks before a wait; False to skip the wait and go round again."""
        self._fill()
        return True

    def _start(self, index: int):
        """Starts chunk `index` on a worker; returns its handle, or None when no worker can take it."""
        raise NotImplementedError

    def _wait(self, timeout_s: float | None):
        """The handles finished within `timeout_s` seconds (None: until one finishes)."""
        raise NotImplementedError

    def _fetch(self, handle):
        """The result of a finished chunk; raises `WorkerLost` when its worker died."""
        raise NotImplementedError

    def _recover(self, lost: list[tuple[ChunkTask, str]]) -> None:
        """Deals with chunks whose worker died (`(task, what was seen)`); by default they stay lost."""

    def _drop_overruns(self, overruns: list[tuple[object, ChunkTask]]) -> None:
        """Stops and reports the `(handle, task)` chunks past their deadline; their samples stay invalid."""
        raise NotImplementedError

    def _abort(self) -> None:
        """Leaves nothing running after an exception."""
