"""`ChunkScheduler`, the chunk loop both chunked backends run, on threads instead of processes.

The scheduler must return every chunk's result in chunk order, never have more than
`num_workers` chunks out when there are deadlines (twice that without), hand a chunk
past its deadline to `_drop_overruns` with a warning naming its samples and deadline,
hand a chunk whose worker died to `_recover`, and call `_abort` on any exception. The
process-pool and Ray tests in `test_backends.py` cover the same paths with real workers.
"""

import logging
import threading
import time
from concurrent import futures

import pytest

from autosimulate_tf.data.backends.scheduler import ChunkScheduler, WorkerLost


class ThreadScheduler(ChunkScheduler):
    """Chunk i sleeps `durations[i]` s on a thread and returns `"chunk i"`; chunks in `die` lose their worker."""

    owner = "ThreadScheduler"
    overrun_consequence = "chunk abandoned"

    def __init__(self, durations, timeout_s, num_workers, die=(), fail=()):
        super().__init__([(i, i + 1) for i in range(len(durations))], timeout_s, 0.05, num_workers)
        self.executor = futures.ThreadPoolExecutor(4 * num_workers)
        self.durations, self.die, self.fail = durations, die, fail
        self.most_running, self.lost, self.overrun, self.aborted = 0, [], [], False
        self.release = threading.Event()

    def work(self, index):
        self.release.wait(self.durations[index])
        if index in self.die:
            raise RuntimeError("worker died")
        if index in self.fail:
            raise KeyError(index)
        return f"chunk {index}"

    def _start(self, index):
        self.most_running = max(self.most_running, len(self.running) + 1)
        return self.executor.submit(self.work, index)

    def _wait(self, timeout_s):
        done, _ = futures.wait(list(self.running), timeout=timeout_s, return_when=futures.FIRST_COMPLETED)
        return done

    def _fetch(self, handle):
        try:
            return handle.result()
        except RuntimeError as error:
            raise WorkerLost("RuntimeError") from error

    def _recover(self, lost):
        self.lost.extend(task.index for task, _ in lost)

    def _drop_overruns(self, overruns):
        for _, task in overruns:
            self.overrun.append(task.index)
            self._warn_overrun(task)

    def _abort(self):
        self.aborted = True

    def finish(self):
        self.release.set()  # Wakes a sleeping overrun so no thread outlives the test.
        self.executor.shutdown(wait=True)


@pytest.mark.parametrize(("timeout_s", "most_running"), [(5.0, 2), (None, 4)])
def test_every_chunk_comes_back_in_order_within_capacity(timeout_s, most_running):
    scheduler = ThreadScheduler([0.01 * (i % 3) for i in range(9)], timeout_s, num_workers=2)
    try:
        assert scheduler.run() == [f"chunk {i}" for i in range(9)]
    finally:
        scheduler.finish()
    assert scheduler.most_running == most_running
    assert not (scheduler.lost or scheduler.overrun or scheduler.aborted)


def test_a_chunk_past_its_deadline_is_dropped_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="absl")
    scheduler = ThreadScheduler([0.0, 30.0, 0.0, 0.0], timeout_s=0.01, num_workers=2)
    begin = time.monotonic()
    try:
        results = scheduler.run()
    finally:
        scheduler.finish()
    assert time.monotonic() - begin < 10
    assert results == ["chunk 0", None, "chunk 2", "chunk 3"]
    assert scheduler.overrun == [1]
    messages = [record.getMessage() for record in caplog.records]
    assert (
        "ThreadScheduler: rendering samples [1, 2) exceeded its deadline of 0.1 s (render_timeout_s=0.01 per sample "
        "+ 0.1 s grace); chunk abandoned, samples marked invalid." in messages
    ), messages


def test_a_chunk_whose_worker_died_goes_to_recover():
    scheduler = ThreadScheduler([0.0] * 5, timeout_s=None, num_workers=1, die=(3,))
    try:
        results = scheduler.run()
    finally:
        scheduler.finish()
    assert results == ["chunk 0", "chunk 1", "chunk 2", None, "chunk 4"]
    assert scheduler.lost == [3]


def test_any_other_error_aborts_the_call_and_propagates():
    scheduler = ThreadScheduler([0.0] * 3, timeout_s=1.0, num_workers=1, fail=(1,))
    try:
        with pytest.raises(KeyError):
            scheduler.run()
    finally:
        scheduler.finish()
    assert scheduler.aborted
