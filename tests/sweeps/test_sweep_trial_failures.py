"""A trial that fails is recorded with its error and the other trials still run."""

import os

from sweep_testing import TINY_TRAINING, read_rows, read_trial

from autosimulate_tf.sweeps import run


def test_a_failing_trial_is_recorded_and_does_not_stop_the_others(tmp_path, capsys):
    # gin parses -1.0 fine; the library refuses it when the trial builds its estimator (exit 2).
    outcome = run.run_sweep(
        str(tmp_path),
        ["toy_gmm.gin"],
        [*TINY_TRAINING, "NUM_SAMPLES = 20"],
        sweep_lines=["HypergradientEstimator.damping=[-1.0, 0.1]"],
        settings=run.RunSettings(parallel=2),
    )
    assert (outcome.count("failed"), outcome.count("finished")) == (1, 1)
    failed, finished = read_rows(tmp_path)
    assert (failed["status"], failed["return_code"], finished["status"]) == ("failed", "2", "finished")
    assert "HypergradientEstimator.damping=-1.0 must be >= 0" in failed["error"]
    record = read_trial(failed["folder"])
    assert record["status"] == "failed" and "must be >= 0" in record["error"]
    assert os.path.exists(os.path.join(finished["folder"], "results.json"))
    printed = capsys.readouterr().out
    assert "FAILED trial-000-damping=-1.0" in printed and "1 finished, 1 failed" in printed
    # The table ranks the finished grid point first and shows the failed one without a value.
    table = outcome.table.splitlines()
    assert table[4].startswith("| 0.1 |") and table[5] == "| -1.0 | - | - | - | 0/1 |"
