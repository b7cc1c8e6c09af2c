"""The binary survives SIGKILL and SIGINT: restarting with the same --root_dir finishes the same run."""

import json
import os
import random
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(REPO, "experiments", "train.py")
FLAGS = [
    "--gin_file=toy_gmm.gin",
    "--gin_bindings=train_autosimulate.num_outer_iterations = 150",
    "--gin_bindings=train_autosimulate.checkpoint_interval = 3",
    "--gin_bindings=train_autosimulate.log_interval = 1",
    "--gin_bindings=NUM_SAMPLES = 60",
    "--gin_bindings=NUM_INNER_STEPS = 10",
]


def command(root_dir):
    return [sys.executable, BINARY, f"--root_dir={root_dir}", *FLAGS]


def environment():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO, PYTHONUNBUFFERED="1")


def run_to_completion(root_dir):
    process = subprocess.run(command(root_dir), capture_output=True, text=True, timeout=300, env=environment())
    assert process.returncode == 0, process.stderr[-3000:]
    return process


def results_without_timing(root_dir):
    results = json.loads((root_dir / "results.json").read_text())
    for clock in ("wall_clock_s", "render_wall_clock_s"):  # timings differ between any two runs
        results.pop(clock)
    return results


def start_and_wait_for_checkpoint(root_dir, extra_delay_s):
    """Starts the binary, waits until its first checkpoint exists, then a little longer."""
    process = subprocess.Popen(
        command(root_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment()
    )
    state_file = root_dir / "checkpoints" / "checkpoint"
    deadline = time.time() + 240
    while not state_file.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    time.sleep(extra_delay_s)
    return process


def test_sigkill_at_a_random_point_then_restart_matches_an_uninterrupted_run(tmp_path):
    run_to_completion(tmp_path / "uninterrupted")
    expected = results_without_timing(tmp_path / "uninterrupted")

    killed_dir = tmp_path / "killed"
    delay = random.Random(1234).uniform(0.0, 0.5)  # a "random" but reproducible point after the first checkpoint
    process = start_and_wait_for_checkpoint(killed_dir, delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (killed_dir / "results.json").exists(), "the run was meant to be killed before finishing"
    # A checkpoint half-written at the kill: data files with no entry in the state file must be ignored.
    (killed_dir / "checkpoints" / "ckpt-999.index").write_bytes(b"\x00garbage")
    (killed_dir / "checkpoints" / "ckpt-999.data-00000-of-00001").write_bytes(b"\x00garbage")

    resumed = run_to_completion(killed_dir)
    assert "Resuming from" in resumed.stdout
    assert results_without_timing(killed_dir) == expected


def test_sigint_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    process = start_and_wait_for_checkpoint(tmp_path, 0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Resume by running the same command again" in stderr
    assert f"--root_dir={tmp_path}" in stderr
    assert not (tmp_path / "results.json").exists()
    resumed = run_to_completion(tmp_path)
    assert "Resuming from" in resumed.stdout
    assert json.loads((tmp_path / "results.json").read_text())["outer_iterations"] == 150
