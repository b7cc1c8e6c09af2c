"""Warnings when the hypergradient cannot be trusted (train/diagnostics.py)."""

import json

import gin
import pytest

from autosimulate_tf import configs
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.train import train_autosimulate
from autosimulate_tf.train.diagnostics import (
    EXPLODING_NORM,
    NEGATIVE_CURVATURE,
    RESIDUAL,
    VALIDATION_COLLAPSE,
    HypergradientHealth,
)


def metrics(iteration, residual=1e-3, negative=False, norm=1.0, accuracy=None, restarted=False):
    return {
        "iteration": iteration,
        "solver_residual": residual,
        "negative_curvature": negative,
        "hypergradient_norm": norm,
        "val_accuracy": accuracy,
        "model_restarted": restarted,
    }


def kinds(health):
    return [warning["kind"] for warning in health.warnings]


def test_a_healthy_run_raises_nothing():
    health = HypergradientHealth(window=5)
    for i in range(1, 30):
        assert health.observe(metrics(i, residual=0.3 if i % 7 else 2.0, negative=i % 5 == 0, norm=1.0 + 0.1 * i)) == []


def test_a_diverging_solver_is_reported_once_naming_the_knobs():
    health = HypergradientHealth(window=4)
    raised = [health.observe(metrics(i, residual=3.9e5)) for i in range(1, 10)]
    assert [len(r) for r in raised] == [0, 0, 1, 0, 0, 0, 0, 0, 0]  # raised at the 3rd iteration, once
    (warning,) = health.warnings
    assert warning["kind"] == RESIDUAL and warning["iteration"] == 3
    assert "HypergradientEstimator.damping" in warning["message"] and "neumann.step_size" in warning["message"]


def test_negative_curvature_on_most_recent_iterations_is_reported():
    health = HypergradientHealth(window=4)
    for i in range(1, 5):
        health.observe(metrics(i, negative=i % 2 == 0))  # half: not "most"
    assert kinds(health) == []
    for i in range(5, 8):
        health.observe(metrics(i, negative=True))
    assert kinds(health) == [NEGATIVE_CURVATURE]
    assert "'gauss_newton'" in health.warnings[0]["message"]


def test_an_exploding_hypergradient_norm_is_reported():
    health = HypergradientHealth(window=3, norm_growth=100.0)
    for i, norm in enumerate([1.0, 2.0, 1.5, 50.0, 180.0], start=1):
        health.observe(metrics(i, norm=norm))
    assert kinds(health) == [EXPLODING_NORM] and health.warnings[0]["iteration"] == 5


def test_a_validation_collapse_is_reported_but_not_single_bad_iterations():
    health = HypergradientHealth(window=5, accuracy_drop=0.2)
    # Rising to ~0.6 with single iterations at 0.3: the window median ignores them.
    rising = [0.3, 0.4, 0.5, 0.55, 0.6, 0.3, 0.62, 0.6, 0.3, 0.61, 0.6, 0.59]
    for i, accuracy in enumerate(rising, start=1):
        health.observe(metrics(i, accuracy=accuracy))
    assert kinds(health) == [] and health.best_accuracy == pytest.approx(0.6)
    # A lasting fall to 0.29: raised once the window median is more than 0.2 below 0.6.
    for i in range(13, 25):
        health.observe(metrics(i, accuracy=0.29))
    assert kinds(health) == [VALIDATION_COLLAPSE]
    # Iterations 11-15 are the first window with three 0.29s (median 0.29 < 0.6 - 0.2).
    assert health.warnings[0]["iteration"] == 15
    assert "learning_rate" in health.warnings[0]["message"] and "0.600" in health.warnings[0]["message"]


def test_the_dip_after_a_model_restart_is_not_a_collapse_but_a_lasting_fall_is():
    # A run at ~0.6 whose model restarts at iteration 21 and is young for six iterations
    # (the pattern seen on the scenes), then recovers.
    accuracies = [0.6] * 20 + [0.3, 0.27, 0.29, 0.3, 0.26, 0.32] + [0.6] * 14
    health = HypergradientHealth(window=10, accuracy_drop=0.2, restart_settling=5)
    for i, accuracy in enumerate(accuracies, start=1):
        health.observe(metrics(i, accuracy=accuracy, restarted=i == 21))
    assert kinds(health) == []
    # Without the settling period the same run warns: the check above is not vacuous.
    health = HypergradientHealth(window=10, accuracy_drop=0.2, restart_settling=0)
    for i, accuracy in enumerate(accuracies, start=1):
        health.observe(metrics(i, accuracy=accuracy, restarted=i == 21))
    assert kinds(health) == [VALIDATION_COLLAPSE]
    # A fall that outlasts the settling period is still reported, against the best before the restart.
    health = HypergradientHealth(window=10, accuracy_drop=0.2, restart_settling=5)
    for i, accuracy in enumerate([0.6] * 20 + [0.3] * 20, start=1):
        health.observe(metrics(i, accuracy=accuracy, restarted=i == 21))
    assert kinds(health) == [VALIDATION_COLLAPSE] and health.warnings[0]["iteration"] == 35


def test_regression_runs_without_accuracy_raise_no_collapse_warning():
    health = HypergradientHealth(window=3)
    for i in range(1, 20):
        health.observe(metrics(i))
    assert kinds(health) == [] and health.best_accuracy is None


def test_bad_thresholds_are_config_errors():
    with pytest.raises(ConfigError, match=r"HypergradientHealth\.window=1"):
        HypergradientHealth(window=1)
    with pytest.raises(ConfigError, match=r"HypergradientHealth\.restart_settling=-1"):
        HypergradientHealth(restart_settling=-1)
    with pytest.raises(ConfigError, match=r"HypergradientHealth\.norm_growth=1"):
        HypergradientHealth(norm_growth=1)
    with pytest.raises(ConfigError, match=r"HypergradientHealth\.accuracy_drop=0"):
        HypergradientHealth(accuracy_drop=0)


def test_a_diverging_neumann_solver_warns_in_results_json(tmp_path, capsys):
    gin.clear_config()
    configs.parse_gin(
        ["toy_gmm.gin"],
        [
            "HypergradientEstimator.solver = @neumann",
            "neumann.step_size = 50.0",  # far above 2 / the largest eigenvalue: the series diverges
            "train_autosimulate.num_outer_iterations = 4",
            "AutoSimulateTrainer.num_initial_inner_steps = 20",
            "NUM_SAMPLES = 50",
        ],
    )
    results = train_autosimulate(root_dir=str(tmp_path))
    assert RESIDUAL in [warning["kind"] for warning in results["hypergradient_warnings"]]
    assert json.loads((tmp_path / "hypergradient_warnings.json").read_text()) == results["hypergradient_warnings"]
    assert "WARNING (outer iteration 3)" in capsys.readouterr().out
    # Resuming the finished run does not raise the warning again.
    gin.clear_config()
    configs.parse_gin(
        ["toy_gmm.gin"],
        [
            "HypergradientEstimator.solver = @neumann",
            "neumann.step_size = 50.0",
            "train_autosimulate.num_outer_iterations = 6",
            "AutoSimulateTrainer.num_initial_inner_steps = 20",
            "NUM_SAMPLES = 50",
        ],
    )
    again = train_autosimulate(root_dir=str(tmp_path))
    assert [w["kind"] for w in again["hypergradient_warnings"]].count(RESIDUAL) == 1
