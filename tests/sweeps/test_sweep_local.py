"""The local backend's resource handling: GPUs handed out per trial, thread caps."""

import socket
import subprocess
import sys
import threading
import time

import pytest

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.sweeps import local, trial_runner


def test_whole_gpus_are_handed_out_and_given_back():
    slots = local.GpuSlots(["0", "1", "2"], gpus_per_trial=2)
    first = slots.acquire()
    assert first == ["0", "1"]
    waiting = threading.Thread(target=lambda: results.append(slots.acquire()))
    results = []
    waiting.start()
    waiting.join(timeout=0.2)
    assert waiting.is_alive(), "only one GPU is free: the second trial waits"
    slots.release(first)
    waiting.join(timeout=5)
    assert len(results[0]) == 2 and len(set(results[0])) == 2


def test_a_fraction_spreads_trials_over_gpus_before_sharing():
    slots = local.GpuSlots(["0", "1"], gpus_per_trial=0.5)
    assert [slots.acquire() for _ in range(4)] == [["0"], ["1"], ["0"], ["1"]]


def test_impossible_gpu_requests_are_refused():
    with pytest.raises(ConfigError, match="only 1 GPU"):
        local.GpuSlots(["0"], gpus_per_trial=2)
    with pytest.raises(ConfigError, match="whole number"):
        local.GpuSlots(["0", "1"], gpus_per_trial=1.5)
    with pytest.raises(ConfigError, match="only 0 GPU"):
        local.GpuSlots([], gpus_per_trial=1)


def test_cpu_cap_sets_the_thread_pools():
    assert trial_runner.cpu_environment(None) == {}
    assert trial_runner.cpu_environment(1.5)["TF_NUM_INTRAOP_THREADS"] == "2"
    assert trial_runner.cpu_environment(0.5)["OMP_NUM_THREADS"] == "1"


def test_a_trial_still_running_from_an_earlier_sweep_is_recognised(tmp_path):
    folder = str(tmp_path / "trial-000")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", f"--root_dir={folder}"])
    try:
        record = {"status": "running", "pid": child.pid, "host": socket.gethostname(), "folder": folder}
        # Until the child has exec'd, /proc shows the parent's command line: wait for it (a loaded machine).
        deadline = time.monotonic() + 20
        while not trial_runner.still_running(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trial_runner.still_running(record)
        # The same pid running something else (a reused pid), or a finished record, is not the trial.
        assert not trial_runner.still_running({**record, "folder": str(tmp_path / "other")})
        assert not trial_runner.still_running({**record, "status": "interrupted"})
    finally:
        child.kill()
        child.wait()
    assert not trial_runner.still_running(record)
