"""The natural-gradient psi step (`AutoSimulateTrainer.step_rule`) in whole runs of the outer loop."""

import json

import gin
import numpy as np
import pytest

from autosimulate_tf import configs
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.hypergrad import step_rules
from autosimulate_tf.problem import Problem
from autosimulate_tf.train import AutoSimulateTrainer, train_autosimulate

NATURAL_GIN = "toy_gmm_natural_gradient.gin"
MAX_KL = 0.05  # as in gin/toy_gmm_natural_gradient.gin
TINY = ["AutoSimulateTrainer.num_initial_inner_steps = 20", "AutoSimulateTrainer.num_inner_steps = 10"]


def run(root_dir, bindings=(), history=None, gin_file=NATURAL_GIN):
    """One run from a clean gin config (as a fresh process would have)."""
    gin.clear_config()
    configs.parse_gin([gin_file], [*bindings, "train_autosimulate.log_interval = 1000"])
    return train_autosimulate(root_dir=str(root_dir), history=history)


def test_toy_gmm_with_the_natural_step_trains_and_writes_results(tmp_path):
    """With the shipped settings (seed 0), 12 outer iterations take the XOR toy from ~50% to over 85%."""
    history = []
    results = run(tmp_path, ["train_autosimulate.num_outer_iterations = 12"], history)
    assert results["initial_val_accuracy"] < 0.65
    assert results["val_accuracy"] > 0.85, results["val_accuracy"]
    with open(tmp_path / "results.json") as f:
        assert json.load(f) == results
    kls = [metrics[step_rules.PSI_STEP_KL] for metrics in history]
    assert max(kls) <= MAX_KL * (1 + 1e-6) and min(kls) > 0
    assert all(metrics[step_rules.PSI_STEP_SAMPLED_KL] <= step_rules.KL_TOLERANCE * MAX_KL for metrics in history)
    assert any(metrics[step_rules.PSI_STEP_KL_BOUND_ACTIVE] for metrics in history)
    assert all(metrics[step_rules.PSI_STEP_SIZE] > 0 for metrics in history)
    operative = (tmp_path / "operative_config.gin").read_text()
    assert "AutoSimulateTrainer.step_rule = @NaturalGradientStep()" in operative


def test_a_resumed_run_with_the_natural_step_matches_an_uninterrupted_one(tmp_path):
    bindings = [*TINY, "train_autosimulate.num_outer_iterations = 4"]
    uninterrupted = run(tmp_path / "uninterrupted", bindings)
    run(tmp_path / "interrupted", [*TINY, "train_autosimulate.num_outer_iterations = 2"])
    resumed = run(tmp_path / "interrupted", bindings)
    np.testing.assert_array_equal(resumed["final_psi"]["means"], uninterrupted["final_psi"]["means"])
    assert resumed["val_loss"] == uninterrupted["val_loss"]


def test_the_natural_step_runs_with_reuse_under_a_mirrored_strategy(tmp_path):
    """Importance-weighted Fisher (reused renders, a D_t of growing size) with mirrored model variables."""
    history = []
    bindings = [
        *TINY,
        "train_autosimulate.num_outer_iterations = 3",
        "AutoSimulateTrainer.reuse_iterations = 1",
        "AutoSimulateTrainer.strategy = @tf.distribute.MirroredStrategy()",
        "tf.distribute.MirroredStrategy.devices = ['/cpu:0']",
    ]
    results = run(tmp_path, bindings, history)
    assert results["outer_iterations"] == 3 and results["skipped_updates"] == 0
    assert all(0 < metrics[step_rules.PSI_STEP_KL] <= MAX_KL * (1 + 1e-6) for metrics in history)
    assert history[-1]["reuse_effective_sample_fraction"] < 1.0


@pytest.mark.parametrize(
    ("bindings", "message"),
    [
        (["AutoSimulateTrainer.step_rule = @NaturalGradientStep()"], r"needs plain SGD: .*\(got Adam\)"),
        (["outer/keras.optimizers.SGD.momentum = 0.9"], r"outer/keras\.optimizers\.SGD\.momentum=0\.9"),
        (["NaturalGradientStep.max_kl = 0"], r"NaturalGradientStep\.max_kl=0 must be a number > 0"),
    ],
)
def test_a_bad_natural_step_setting_fails_before_any_rendering(bindings, message):
    gin_file = "toy_gmm.gin" if "@NaturalGradientStep()" in bindings[0] else NATURAL_GIN
    gin.clear_config()
    configs.parse_gin([gin_file], bindings)
    with pytest.raises(ConfigError, match=message):
        AutoSimulateTrainer(problem=Problem())
