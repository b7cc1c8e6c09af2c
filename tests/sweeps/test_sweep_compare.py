"""`--entry_point=compare`: each trial is one comparison, its seed bound as `run_comparison.seeds`."""

from autosimulate_tf.sweeps import run, trial_runner


def test_compare_trials_report_every_method(tmp_path):
    outcome = run.run_sweep(
        str(tmp_path),
        ["compare_gmm.gin"],
        [
            "run_comparison.methods = ('autosimulate',)",
            "run_method.max_outer_iterations = 2",
            "AutoSimulateTrainer.num_initial_inner_steps = 10",
        ],
        sweep_lines=["DAMPING=[0.1]"],
        seeds=[3],
        entry_point="compare",
    )
    (row,) = outcome.rows
    assert row["status"] == "finished", row
    assert 0.0 <= row["autosimulate.final_val_accuracy"] <= 1.0 and row["reference"] == "autosimulate"
    assert outcome.table.startswith("autosimulate.final_val_accuracy over seeds")
    command = trial_runner.read_record(row["folder"])["command"]
    assert command[1:3] == ["-m", "autosimulate_tf.comparison.launch"]
    assert command[-1] == "--gin_bindings=run_comparison.seeds = (3,)"
