"""Selecting the final psi by fresh-model validation accuracy: helpers, a real selection, the run."""

import contextlib
import json

import gin
import numpy as np
import pytest

from autosimulate_tf import configs
from autosimulate_tf.data.real import XOR_MEANS
from autosimulate_tf.problem import Problem
from autosimulate_tf.train import psi_selection, train_autosimulate
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator

ENTRIES = [{"iteration": i, "scale": float(i)} for i in range(11)]


def test_candidate_iterations_are_the_ends_of_equal_segments():
    assert psi_selection.candidate_iterations(ENTRIES, 5) == [2, 4, 6, 8, 10]
    assert psi_selection.candidate_iterations(ENTRIES, 3) == [4, 7, 10]
    assert psi_selection.candidate_iterations(ENTRIES, 1) == [10]
    # More candidates than iterations: every iteration once, never iteration 0.
    assert psi_selection.candidate_iterations(ENTRIES[:4], 10) == [1, 2, 3]


def test_candidate_iterations_reject_bad_counts_and_empty_runs():
    with pytest.raises(ValueError, match="psi_selection_candidates=0"):
        psi_selection.candidate_iterations(ENTRIES, 0)
    with pytest.raises(ValueError, match="at least one outer iteration"):
        psi_selection.candidate_iterations(ENTRIES[:1], 3)


def test_psi_at_returns_the_recorded_psi_and_names_a_missing_iteration():
    assert psi_selection.psi_at(ENTRIES, 7)["scale"] == np.float32(7.0)
    with pytest.raises(KeyError, match="outer iteration 42"):
        psi_selection.psi_at(ENTRIES, 42)


class _RecordingSimulator:
    """Holds a psi dict; `temporary_psi` swaps it in and back, as `Simulator.temporary_psi` does."""

    def __init__(self):
        self.psi = None

    @contextlib.contextmanager
    def temporary_psi(self, constrained):
        previous, self.psi = self.psi, constrained
        try:
            yield
        finally:
            self.psi = previous


class _TableEvaluator:
    """Scores psi["score"] as validation accuracy and psi["loss"] as validation loss."""

    def __init__(self, simulator):
        self.simulator = simulator
        self.seeds = []

    def evaluate(self, seed):
        self.seeds.append(seed)
        psi = self.simulator.psi
        return {
            "val_accuracy": psi["score"],
            "val_loss": psi["loss"],
            "test_accuracy": 0.0,
            "simulated_samples": 7,
            "wall_clock_s": 0,
        }


def test_select_psi_keeps_the_best_validation_accuracy_breaking_ties_by_loss():
    simulator = _RecordingSimulator()
    evaluator = _TableEvaluator(simulator)
    candidates = [
        (10, {"score": 0.80, "loss": 0.1}),
        (20, {"score": 0.90, "loss": 0.5}),
        (30, {"score": 0.90, "loss": 0.4}),  # same accuracy as 20, lower loss: wins
        ("average", {"score": 0.85, "loss": 0.2}),
    ]
    best, table = psi_selection.select_psi(simulator, evaluator, candidates, seed=3)
    assert best == 2
    assert [row["candidate"] for row in table] == [10, 20, 30, "average"]
    assert simulator.psi is None  # every candidate was put in temporarily: psi is as it was
    assert evaluator.seeds == [3, 3, 3, 3]  # common random numbers across candidates


class _SeedDependentEvaluator(_TableEvaluator):
    """Validation accuracy psi["scores"][seed - first_seed]: a candidate that is lucky on one seed only."""

    def __init__(self, simulator, first_seed):
        super().__init__(simulator)
        self.first_seed = first_seed

    def evaluate(self, seed):
        self.seeds.append(seed)
        score = self.simulator.psi["scores"][seed - self.first_seed]
        return {
            "val_accuracy": score,
            "val_loss": 1 - score,
            "test_accuracy": score,
            "simulated_samples": 5,
            "wall_clock_s": 1.0,
        }


def test_select_psi_averages_several_seeds_per_candidate():
    simulator = _RecordingSimulator()
    candidates = [("lucky", {"scores": [0.95, 0.70, 0.70]}), ("steady", {"scores": [0.85, 0.85, 0.85]})]
    evaluator = _SeedDependentEvaluator(simulator, first_seed=4)
    best, _ = psi_selection.select_psi(simulator, evaluator, candidates, seed=4)
    assert best == 0, "one seed: the lucky candidate wins"
    evaluator = _SeedDependentEvaluator(simulator, first_seed=4)
    best, table = psi_selection.select_psi(simulator, evaluator, candidates, seed=4, num_seeds=3)
    assert best == 1, "three seeds: the steady candidate wins on the mean"
    assert evaluator.seeds == [4, 5, 6, 4, 5, 6], "the same seeds for every candidate"
    assert table[0]["val_accuracy"] == pytest.approx(0.7833333)
    assert table[0]["val_accuracy_per_seed"] == [0.95, 0.70, 0.70]
    assert table[1]["simulated_samples"] == 15 and table[1]["wall_clock_s"] == 3.0
    with pytest.raises(ValueError, match="psi_selection_seeds=0"):
        psi_selection.select_psi(simulator, evaluator, candidates, seed=4, num_seeds=0)


def test_select_psi_prefers_the_xor_layout_on_the_gmm_toy():
    """A real selection: fresh MLPs tell the right mixture means from the initial ones."""
    gin.clear_config()
    configs.parse_gin(["toy_gmm.gin"], [])
    problem = Problem()
    evaluator = ScratchTrainingEvaluator(problem, num_samples=200, num_steps=200, learning_rate=0.01)
    initial = problem.simulator.constrained_parameters()
    candidates = [("initial", initial), ("xor", {"means": XOR_MEANS}), ("initial again", initial)]
    best, table = psi_selection.select_psi(problem.simulator, evaluator, candidates, seed=0)
    assert table[best]["candidate"] == "xor"
    # The initial layout scores near chance on the XOR data, the right one near the Bayes limit.
    assert table[0]["val_accuracy"] < 0.7 < 0.85 < table[1]["val_accuracy"]
    # Same seed, same psi: the same score (the comparison is not at the mercy of training noise).
    assert table[0]["val_accuracy"] == table[2]["val_accuracy"]
    np.testing.assert_array_equal(problem.simulator.constrained_parameters()["means"], initial["means"])


def test_train_autosimulate_selects_among_trajectory_psi_and_the_average(tmp_path):
    gin.clear_config()
    configs.parse_gin(
        ["toy_gmm.gin"],
        [
            "train_autosimulate.num_outer_iterations = 6",
            "HandOff.psi_average_fraction = 0.5",
            "HandOff.psi_selection_candidates = 3",
            "HandOff.psi_selection_seeds = 2",
            "AutoSimulateTrainer.num_initial_inner_steps = 20",
            "selection/ScratchTrainingEvaluator.num_samples = 100",
            "selection/ScratchTrainingEvaluator.num_steps = 20",
        ],
    )
    results = train_autosimulate(root_dir=str(tmp_path))
    table = results["psi_selection"]
    assert [row["candidate"] for row in table] == [2, 4, 6, "average"]
    best = max(table, key=lambda row: (row["val_accuracy"], -row["val_loss"]))
    assert results["selected_psi_candidate"] == best["candidate"]
    assert all(len(row["val_accuracy_per_seed"]) == 2 for row in results["psi_selection"])
    assert (
        results["selection_simulated_samples"] == 4 * 2 * 100
    )  # 3 iterates + the average, 2 models of 100 renders each
    trajectory = {
        e["iteration"]: e for e in map(json.loads, (tmp_path / "psi_trajectory.jsonl").read_text().splitlines())
    }
    expected = results["averaged_psi"] if best["candidate"] == "average" else trajectory[best["candidate"]]
    np.testing.assert_allclose(results["selected_psi"]["means"], expected["means"], rtol=1e-5)
    np.testing.assert_allclose(results["final_psi"]["means"], trajectory[6]["means"], rtol=1e-6)


@pytest.mark.parametrize(
    "binding, message",
    [
        ("psi_selection_candidates = -1", "psi_selection_candidates=-1"),
        ("psi_selection_seeds = 0", "psi_selection_seeds=0"),
    ],
)
def test_train_autosimulate_rejects_bad_selection_settings_before_training(binding, message, tmp_path):
    gin.clear_config()
    configs.parse_gin(["toy_gmm.gin"], [f"HandOff.{binding}"])
    with pytest.raises(ValueError, match=message):
        train_autosimulate(root_dir=str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_train_autosimulate_can_hand_on_the_initial_psi_when_tuning_made_it_worse(tmp_path):
    # Start at the right (XOR) layout and take psi steps far too large: every later iterate is
    # worse than the start, so with `psi_selection_include_initial` the start must be kept.
    gin.clear_config()
    means = ", ".join(f"({x}, {y})" for x, y in np.asarray(XOR_MEANS).tolist())
    configs.parse_gin(
        ["toy_gmm.gin"],
        [
            f"GaussianMixtureSimulator.initial_means = ({means})",
            "outer/keras.optimizers.Adam.learning_rate = 4.0",
            "train_autosimulate.num_outer_iterations = 3",
            "HandOff.psi_selection_candidates = 3",
            "HandOff.psi_selection_include_initial = True",
            "AutoSimulateTrainer.num_initial_inner_steps = 20",
            "selection/ScratchTrainingEvaluator.num_samples = 200",
            "selection/ScratchTrainingEvaluator.num_steps = 200",
            "selection/ScratchTrainingEvaluator.learning_rate = 0.01",
        ],
    )
    results = train_autosimulate(root_dir=str(tmp_path))
    table = results["psi_selection"]
    assert [row["candidate"] for row in table] == [0, 1, 2, 3]
    assert table[0]["val_accuracy"] > 0.85 > max(row["val_accuracy"] for row in table[1:])
    assert results["selected_psi_candidate"] == 0
    np.testing.assert_allclose(results["selected_psi"]["means"], XOR_MEANS, atol=1e-5)
    # The final iterate is still what tuning reached (and what the checkpoint holds).
    assert np.abs(np.asarray(results["final_psi"]["means"]) - XOR_MEANS).max() > 1.0
