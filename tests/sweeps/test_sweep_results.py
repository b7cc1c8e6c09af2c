"""Rows, the table over seeds, the default metric, TensorBoard HParams data and how failures are summarised."""

import glob
import os

from sweep_testing import hparams_plugin_data

from autosimulate_tf.sweeps import hparams, results, trial_runner


def rows(metric_values, name="HypergradientEstimator.damping", metric="val_accuracy"):
    """One finished row per `(value, seed, metric)`."""
    return [
        {"trial": f"trial-{i:03d}", name: value, "seed": seed, "status": "finished", metric: score}
        for i, (value, seed, score) in enumerate(metric_values)
    ]


def test_flatten_keeps_scalars_and_one_nested_level():
    results_json = {
        "val_accuracy": None,
        "val_loss": 0.2,
        "final_psi": {"input_mean": 1.4, "input_scale": [0.5]},
        "final_model": {"test_loss": 0.3, "test_accuracy": None},
        "psi_selection": [{"candidate": 1}],
    }
    flat = results.flatten_scalars(results_json, "train")
    assert flat == {
        "val_accuracy": None,
        "val_loss": 0.2,
        "final_psi.input_mean": 1.4,
        "final_model.test_loss": 0.3,
        "final_model.test_accuracy": None,
    }
    comparison = {
        "score": "val_loss",
        "reference": "autosimulate",
        "operative_config": "...",
        "methods": {"autosimulate": {"final_val_loss": 0.1, "seeds": []}, "default": {"final_val_loss": 0.5}},
        "ratios_to_reference": {"default": {"simulated_samples_to_target": ">= 3"}},
    }
    flat = results.flatten_scalars(comparison, "compare")
    assert flat["autosimulate.final_val_loss"] == 0.1 and "operative_config" not in flat
    assert flat["ratio.default.simulated_samples_to_target"] == ">= 3"
    assert results.default_metric("compare", [{"status": "finished", **flat}]) == "autosimulate.final_val_loss"


def test_default_metric_is_the_loss_for_regression_and_sets_the_direction():
    regression = [{"status": "finished", "val_accuracy": None, "val_loss": 0.1}]
    assert results.default_metric("train", regression) == "val_loss"
    assert results.default_metric("train", rows([(0.1, 0, 0.9)])) == "val_accuracy"
    assert results.higher_is_better("val_accuracy") and results.higher_is_better("final_model.test_accuracy")
    assert not results.higher_is_better("val_loss") and not results.higher_is_better("autosimulate.wall_clock_s")
    assert not results.higher_is_better("val_accuracy", "min")


def test_table_groups_seeds_and_sorts_best_first():
    table_rows = rows([("0.1", 0, 0.80), ("0.1", 1, 0.90), ("1.0", 0, 0.95), ("1.0", 1, 0.93), ("3.0", 0, None)])
    table_rows[-1]["status"] = "failed"
    table = results.summary_table(table_rows, ["HypergradientEstimator.damping"], "val_accuracy", higher_first=True)
    lines = table.splitlines()
    assert lines[0] == "val_accuracy over seeds, per grid point (higher is better):"
    assert lines[2] == "| HypergradientEstimator.damping | val_accuracy median | min | max | finished |"
    assert lines[4:] == [
        "| 1.0 | 0.94 | 0.93 | 0.95 | 2/2 |",
        "| 0.1 | 0.85 | 0.8 | 0.9 | 2/2 |",
        "| 3.0 | - | - | - | 0/1 |",
    ]
    lowest_first = results.summary_table(table_rows, ["HypergradientEstimator.damping"], "val_accuracy", False)
    assert lowest_first.splitlines()[4].startswith("| 0.1 |")


def test_hparams_data_reads_back(tmp_path):
    table_rows = rows([("0.1", 0, 0.8), ("'hessian'", 1, 0.9)], name="X.curvature")
    table_rows[0]["val_loss"] = 0.5
    log_dir = hparams.write_hparams(str(tmp_path), table_rows, ["X.curvature"])
    (experiment,) = hparams_plugin_data(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")))
    assert {info.name for info in experiment.experiment.hparam_infos} == {"X.curvature", "seed", "status"}
    assert {info.name.tag for info in experiment.experiment.metric_infos} == {"val_accuracy", "val_loss"}
    (session,) = hparams_plugin_data(glob.glob(os.path.join(log_dir, "trial-001", "events.out.tfevents.*")))
    assert session.session_start_info.hparams["X.curvature"].string_value == "hessian"
    assert session.session_start_info.hparams["seed"].number_value == 1
    # A second write replaces the first: every trial shows up once.
    hparams.write_hparams(str(tmp_path), table_rows, ["X.curvature"])
    assert len(glob.glob(os.path.join(log_dir, "trial-000", "events.out.tfevents.*"))) == 1


def test_error_summary_takes_the_config_paragraph_or_the_exception_line(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("AutoSimulate run in x\nConfiguration error: HypergradientEstimator.damping=-1 must\nbe >= 0.\n")
    assert (
        trial_runner.error_summary(str(log)) == "Configuration error: HypergradientEstimator.damping=-1 must be >= 0."
    )
    log.write_text('Traceback (most recent call last):\n  File "x.py", line 1\nTypeError: bad render\n')
    assert trial_runner.error_summary(str(log)) == "TypeError: bad render"
    assert trial_runner.status_for(130, False) == "interrupted"
    assert trial_runner.status_for(-9, False) == "interrupted"
    assert trial_runner.status_for(0, True) == "finished"
    assert trial_runner.status_for(0, False) == trial_runner.status_for(3, False) == "failed"
