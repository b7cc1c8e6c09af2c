"""Ctrl-C stops a sweep with a checkpoint in the running trial; a re-run skips what finished and resumes the rest."""

import json
import os
import signal
import subprocess
import time

from sweep_testing import REPO, environment, read_rows, read_trial, sweep_command

from autosimulate_tf.sweeps import run

GIN_BINDINGS = [
    "train_autosimulate.num_outer_iterations = 20",
    "train_autosimulate.checkpoint_interval = 5",
    "AutoSimulateTrainer.num_initial_inner_steps = 10",
    "NUM_INNER_STEPS = 5",
    "NUM_SAMPLES = 20",
]
SWEEP = ["HypergradientEstimator.damping=[0.1]"]


def test_sigint_interrupts_the_running_trial_and_a_rerun_resumes_it(tmp_path, capsys):
    flags = [f"--root_dir={tmp_path}", "--gin_file=toy_gmm.gin", "--seeds=0,1", "--parallel=1"]
    flags += [f"--sweep={line}" for line in SWEEP] + [f"--gin_bindings={line}" for line in GIN_BINDINGS]
    sweep = subprocess.Popen(
        sweep_command(*flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(), cwd=REPO
    )
    # One trial at a time: the first runs to its end, the second is interrupted after its first checkpoint.
    first, second = tmp_path / "trial-000-damping=0.1-seed0", tmp_path / "trial-001-damping=0.1-seed1"
    deadline = time.time() + 150
    while not (second / "checkpoints" / "checkpoint").exists():
        assert sweep.poll() is None, sweep.communicate()[1][-3000:]
        assert time.time() < deadline, "no checkpoint within 150 s"
        time.sleep(0.05)
    sweep.send_signal(signal.SIGINT)
    stdout, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "run the same command again" in stderr
    record = read_trial(second)
    assert (record["status"], record["return_code"]) == ("interrupted", 130)
    assert "checkpoint saved" in open(second / "log.txt").read()
    assert [row["status"] for row in read_rows(tmp_path)] == ["finished", "interrupted"]
    finished_record = read_trial(first)

    # The same sweep again (in-process here): the finished trial is skipped, the interrupted one resumes.
    outcome = run.run_sweep(str(tmp_path), ["toy_gmm.gin"], GIN_BINDINGS, sweep_lines=SWEEP, seeds=[0, 1])
    assert "2 trials, 1 done before, 1 to run" in capsys.readouterr().out
    assert [row["status"] for row in outcome.rows] == ["finished", "finished"]
    assert read_trial(first) == finished_record
    assert "Resuming from" in open(second / "log.txt").read()
    for row in outcome.rows:
        with open(os.path.join(row["folder"], "results.json")) as f:
            assert json.load(f)["outer_iterations"] == 20
