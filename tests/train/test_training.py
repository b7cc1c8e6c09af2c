"""End-to-end runs of the outer loop from the shipped gin files."""

import json
import os

import gin
import numpy as np
import pytest

from autosimulate_tf import configs
from autosimulate_tf import results_schema as schema
from autosimulate_tf.problem import Problem
from autosimulate_tf.train import train_autosimulate
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator


def run(gin_file, root_dir, bindings=(), history=None):
    """One run from a clean gin config (as a fresh process would have)."""
    gin.clear_config()
    configs.parse_gin([gin_file], list(bindings) + ["train_autosimulate.log_interval = 1000"])
    return train_autosimulate(root_dir=str(root_dir), history=history)


# compare_*.gin files configure experiments/compare.py and are run by tests/comparison.
TRAIN_FILES = [path for path in configs.shipped_gin_files() if not os.path.basename(path).startswith("compare_")]


@pytest.mark.parametrize("gin_path", TRAIN_FILES, ids=os.path.basename)
def test_every_shipped_gin_file_runs_two_outer_iterations(gin_path, tmp_path):
    tiny = ["train_autosimulate.num_outer_iterations = 2", "AutoSimulateTrainer.num_initial_inner_steps = 20"]
    tiny += ["scene_target_data.num_validation = 30", "scene_target_data.num_test = 30"]  # scenes_*.gin
    tiny += ["HandOff.psi_selection_candidates = 2"]
    for scope in ("final", "reference", "selection"):  # the fresh models some configs train at the end
        tiny += [
            f"{scope}/ScratchTrainingEvaluator.num_samples = 300",
            f"{scope}/ScratchTrainingEvaluator.num_steps = 20",
        ]
    results = run(gin_path, tmp_path, tiny)
    assert set(schema.RESULTS_KEYS) <= set(results)
    assert results["outer_iterations"] == 2
    assert results["objective_evaluations"] == 2
    with open(tmp_path / "results.json") as f:
        assert json.load(f) == results
    assert (tmp_path / "operative_config.gin").read_text().strip()
    assert os.listdir(tmp_path / "checkpoints")
    assert os.listdir(tmp_path / "train")  # TensorBoard event file
    assert (tmp_path / "psi_trajectory.png").stat().st_size > 1000
    trajectory = (tmp_path / "psi_trajectory.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in trajectory] == [0, 1, 2]
    if results["test_accuracy"] is None:  # a regression config: losses only
        assert results["initial_val_loss"] > 0 and results["val_loss"] > 0
    if os.path.basename(gin_path).startswith("scenes"):  # the Mitsuba variant that rendered, in results.json
        assert results["renderer"]["renderer"] == "mitsuba"
        assert results["renderer"]["variant"] in ("llvm_ad_rgb", "scalar_rgb")
    if os.path.basename(gin_path).startswith(("digits", "mnist", "scenes")):
        assert 0.0 <= results["final_model"]["test_accuracy"] <= 1.0
        assert results["final_model"]["simulated_samples"] == 300
        assert 0.0 <= results["real_data_reference"]["test_accuracy"] <= 1.0
        assert (tmp_path / "samples.png").stat().st_size > 1000


def test_digits_default_config_does_no_tuning(tmp_path):
    bindings = [
        "final/ScratchTrainingEvaluator.num_samples = 300",
        "final/ScratchTrainingEvaluator.num_steps = 20",
        "HandOff.real_data_reference = False",
    ]
    results = run("digits_default.gin", tmp_path, bindings)
    assert results["outer_iterations"] == 0 and results["simulated_samples"] == 0
    assert results["final_model"]["simulated_samples"] == 300
    # psi is the documented hand-set default.
    assert results["final_psi"]["rotation_mean"] == pytest.approx(0.0)


def test_toy_gmm_reaches_93_percent_within_100_outer_iterations(tmp_path):
    # N = 200 samples, E = 30 inner steps (200 on the first iteration), seed 0: gin/toy_gmm.gin as shipped.
    history = []
    results = run("toy_gmm.gin", tmp_path, history=history)
    accuracies = [metrics["val_accuracy"] for metrics in history]
    assert accuracies[0] < 0.7, "the documented initialisation should start far from the optimum"
    assert max(accuracies) >= 0.93
    assert results["val_accuracy"] >= 0.93
    assert results["test_accuracy"] >= 0.92
    assert results["outer_iterations"] == 100
    assert results["simulated_samples"] == 100 * 200
    assert results["model_steps"] == 200 + 99 * 30
    # Every outer iteration: CG warm start (1) + at most 10 iterations + residual (1).
    assert 100 * 2 <= results["hvp_count"] <= 100 * 12
    # The learned means sit in the XOR layout: class-0 components in quadrants I/III, class 1 in II/IV.
    means = np.array(results["final_psi"]["means"])
    products = means[:, 0] * means[:, 1]
    assert np.all(products[:2] > 0) and np.all(products[2:] < 0), means


def test_pools_puts_90_percent_of_the_mass_on_clean_pools(tmp_path):
    # N = 200, E = 30, seed 0, 60 outer iterations: gin/pools.gin as shipped. Pools 0 and 3 are clean.
    results = run("pools.gin", tmp_path)
    probabilities = np.array(results["final_psi"]["pool_probabilities"])
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert probabilities[0] + probabilities[3] >= 0.9, probabilities


def test_restart_from_first_checkpoint_ends_like_an_uninterrupted_run(tmp_path):
    bindings = ["train_autosimulate.num_outer_iterations = 12", "train_autosimulate.checkpoint_interval = 4"]
    uninterrupted = run("toy_gmm.gin", tmp_path / "uninterrupted", bindings)

    # "Stop" right after the first checkpoint (iteration 4), then restart with the same root_dir.
    stopped_bindings = [*bindings, "train_autosimulate.num_outer_iterations = 4"]
    first = run("toy_gmm.gin", tmp_path / "interrupted", stopped_bindings)
    assert first["outer_iterations"] == 4
    history = []
    resumed = run("toy_gmm.gin", tmp_path / "interrupted", bindings, history=history)
    assert [metrics["iteration"] for metrics in history] == list(range(5, 13)), "must continue, not start over"
    np.testing.assert_array_equal(
        np.array(resumed["final_psi"]["means"]), np.array(uninterrupted["final_psi"]["means"])
    )
    for key in ("val_accuracy", "val_loss", "test_accuracy", "simulated_samples", "model_steps", "hvp_count"):
        assert resumed[key] == uninterrupted[key], key


def test_a_psi_learning_rate_schedule_can_be_bound_in_gin(tmp_path):
    """`keras.optimizers.schedules.CosineDecay` is registered with gin; the psi step size decays with it."""
    from autosimulate_tf.train.trainer import AutoSimulateTrainer

    gin.clear_config()
    configs.parse_gin(
        ["toy_gmm.gin"],
        [
            "outer/keras.optimizers.Adam.learning_rate = @outer/keras.optimizers.schedules.CosineDecay()",
            "outer/keras.optimizers.schedules.CosineDecay.initial_learning_rate = 0.1",
            "outer/keras.optimizers.schedules.CosineDecay.decay_steps = 4",
            "outer/keras.optimizers.schedules.CosineDecay.alpha = 0.0",
            "AutoSimulateTrainer.num_initial_inner_steps = 10",
        ],
    )
    trainer = AutoSimulateTrainer(problem=Problem())
    rates = []
    for _ in range(4):
        rates.append(float(trainer.outer_optimizer.learning_rate.numpy()))
        trainer.step()
    rates.append(float(trainer.outer_optimizer.learning_rate.numpy()))
    np.testing.assert_allclose(rates, [0.1 * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(5)], atol=1e-6)


def test_regression_runs_end_to_end_with_selection_and_a_final_model(tmp_path):
    """A squared-error problem: losses reported before and after, accuracies None, hand-off included."""
    bindings = [
        "train_autosimulate.num_outer_iterations = 4",
        "selection/ScratchTrainingEvaluator.num_samples = 100",
        "selection/ScratchTrainingEvaluator.num_steps = 20",
        "final/ScratchTrainingEvaluator.num_samples = 100",
        "final/ScratchTrainingEvaluator.num_steps = 20",
    ]
    results = run("toy_regression.gin", tmp_path, bindings)
    for name in (schema.VAL_ACCURACY, schema.TEST_ACCURACY, "initial_val_accuracy", "initial_test_accuracy"):
        assert results[name] is None, name
    assert results["initial_val_loss"] > 0 and np.isfinite(results["val_loss"])
    assert results["final_model"]["test_accuracy"] is None and results["final_model"]["test_loss"] > 0
    assert len(results["psi_selection"]) == 3
    assert results["selected_psi_candidate"] in (1, 2, 3, 4)
    assert results["selection_simulated_samples"] == 3 * 100


def test_initial_scores_are_those_of_the_model_before_the_first_psi_update(tmp_path):
    history = []
    results = run("toy_gmm.gin", tmp_path, ["train_autosimulate.num_outer_iterations = 3"], history=history)
    # The first iteration's validation score is taken after its psi update, with the same model weights.
    assert results["initial_val_loss"] == pytest.approx(history[0]["validation_loss"], rel=1e-5)
    assert results["initial_val_accuracy"] == pytest.approx(history[0]["val_accuracy"], abs=1e-6)
    assert 0.0 <= results["initial_test_accuracy"] <= 1.0


def test_a_finished_run_rerun_rereads_and_rewrites_nothing(tmp_path):
    bindings = [
        "train_autosimulate.num_outer_iterations = 2",
        "HandOff.final_training = True",
        "HandOff.psi_selection_candidates = 2",
        "selection/ScratchTrainingEvaluator.num_samples = 100",
        "selection/ScratchTrainingEvaluator.num_steps = 20",
        "final/ScratchTrainingEvaluator.num_samples = 100",
        "final/ScratchTrainingEvaluator.num_steps = 20",
    ]
    first = run("toy_gmm.gin", tmp_path, bindings)
    files = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()}
    evaluations = []
    original = ScratchTrainingEvaluator.evaluate

    def counting(self, seed):
        evaluations.append(seed)
        return original(self, seed)

    ScratchTrainingEvaluator.evaluate = counting
    try:
        again = run("toy_gmm.gin", tmp_path, bindings)
    finally:
        ScratchTrainingEvaluator.evaluate = original
    assert again == first
    assert evaluations == [], "the hand-off's fresh models must be re-read, not trained again"
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()} == files
