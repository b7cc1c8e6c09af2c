"""The referee: one fresh-model rule for every method, reporting only, thinned by `every_samples`."""

import json
import os

import gin
import numpy as np
import pytest

from autosimulate_tf import configs
from autosimulate_tf import results_schema as schema
from autosimulate_tf.comparison import run_comparison
from autosimulate_tf.comparison.referee import REFEREE_SIMULATED_SAMPLES, Referee, method_score_name
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.problem import Problem

GMM = [path for path in configs.shipped_gin_files() if os.path.basename(path) == "compare_gmm.gin"]
TINY = [
    "run_comparison.seeds = (0,)",
    "run_comparison.target_accuracy = 0.55",
    "run_method.max_samples = 300",
    "run_method.max_outer_iterations = 3",
    "run_method.stop_at_target = False",
    "ScratchTrainingEvaluator.num_samples = 100",
    "ScratchTrainingEvaluator.num_steps = 20",
    "AutoSimulateTrainer.num_samples = 40",
    "AutoSimulateTrainer.num_initial_inner_steps = 10",
    "AutoSimulateTrainer.num_inner_steps = 5",
    "LearningToSimulate.num_policy_samples = 2",
    "referee/ScratchTrainingEvaluator.num_samples = 150",
    "referee/ScratchTrainingEvaluator.num_steps = 30",
]


def test_referee_rescores_every_point_without_changing_any_method(tmp_path):
    """scoring='referee': same trajectories and costs, scores from one fresh-model rule."""
    runs = {}
    for scoring in ("method", "referee"):
        gin.clear_config()
        configs.parse_gin(GMM, [*TINY, f"run_method.scoring = '{scoring}'"])
        comparison = run_comparison(root_dir=str(tmp_path / scoring))
        assert comparison["scoring"] == scoring
        runs[scoring] = json.loads((tmp_path / scoring / "runs.json").read_text())["runs"]

    referee_scores = {}
    for method, method_runs in runs["method"].items():
        own, refereed = method_runs[0]["curve"], runs["referee"][method][0]["curve"]
        assert len(own) == len(refereed)
        for before, after in zip(own, refereed, strict=True):
            # The referee is reporting only: the method moves, spends and scores itself exactly as without it.
            for key in (schema.SIMULATED_SAMPLES, schema.OBJECTIVE_EVALUATIONS, schema.MODEL_STEPS, schema.HVP_COUNT):
                assert after[key] == before[key], (method, key)
            assert after[schema.PSI] == before[schema.PSI], method
            for name in schema.SCORES:
                assert after[method_score_name(name)] == before[name], (method, name)
            # One rule for all: the same psi gets the same scores, whichever method proposed it.
            key = json.dumps(after[schema.PSI], sort_keys=True)
            referee_scores.setdefault(key, [after[name] for name in schema.SCORES])
            assert [after[name] for name in schema.SCORES] == referee_scores[key], method
    # LTS's first point is its policy mean before any update, the initial psi: the default's score.
    default_point = runs["referee"]["default"][0]["curve"][0]
    lts_first = runs["referee"]["learning_to_simulate"][0]["curve"][0]
    assert lts_first[schema.PSI] == default_point[schema.PSI]
    assert lts_first[schema.VAL_ACCURACY] == default_point[schema.VAL_ACCURACY]
    assert len(referee_scores) > 3  # AutoSimulate, LTS and random search visited other psi
    assert any(
        point[schema.VAL_ACCURACY] != point[method_score_name(schema.VAL_ACCURACY)]
        for method_runs in runs["referee"].values()
        for point in method_runs[0]["curve"]
    )

    # The score is a fresh model on that psi: re-derive one point with a new referee.
    gin.clear_config()
    configs.parse_gin(GMM, TINY)
    point = dict(runs["referee"]["autosimulate"][0]["curve"][-1])
    expected = point[schema.VAL_ACCURACY]
    problem = Problem()
    initial_psi = problem.simulator.unconstrained_vector()
    referee = Referee(problem, seed=0)
    assert referee.evaluator.num_samples == 150 and referee.evaluator.num_steps == 30
    for name in schema.SCORES:
        point[name] = -1.0
    referee.score(point)
    assert point[schema.VAL_ACCURACY] == pytest.approx(expected)
    np.testing.assert_array_equal(problem.simulator.unconstrained_vector(), initial_psi)  # psi left as it was


class FirstMeanEvaluator:
    """Stands in for the referee's fresh-model training: scores psi by its first component, records it."""

    fine_tune = False

    def __init__(self, simulator):
        self.simulator, self.seen = simulator, []

    def evaluate(self, seed):
        step = round(float(self.simulator.constrained_parameters()["means"][0, 0]))
        self.seen.append(step)
        return {
            schema.VAL_LOSS: 1 - step / 10,
            schema.VAL_ACCURACY: step / 10,
            schema.TEST_LOSS: 1 - step / 20,
            schema.TEST_ACCURACY: step / 20,
        }


def psi_of_step(step: int) -> dict:
    return {"means": [[float(step), 0.0]] * 4}


def test_referee_every_samples_thins_rescoring_and_keeps_the_last_point_fresh():
    """Points between rescorings carry the last score; crossings are seen at rescored points only."""
    configs.parse_gin(GMM, TINY)
    problem = Problem()
    initial_psi = problem.simulator.unconstrained_vector()
    referee = Referee(problem, seed=0, every_samples=100)
    referee.evaluator = FirstMeanEvaluator(problem.simulator)
    curve = []
    for step, samples in enumerate([40, 80, 120, 160, 200, 240, 280, 310]):
        own_scores = dict.fromkeys(schema.SCORES, 0.0)
        curve.append({schema.SIMULATED_SAMPLES: samples, schema.PSI: psi_of_step(step), **own_scores})
        referee.score(curve[-1])
        np.testing.assert_array_equal(problem.simulator.unconstrained_vector(), initial_psi)
    # Rescored at 40, then once >= 100 more samples had been simulated: 160, 280.
    assert referee.evaluator.seen == [0, 3, 6]
    assert [point[REFEREE_SIMULATED_SAMPLES] for point in curve] == [40, 40, 40, 160, 160, 160, 280, 280]
    assert [point[schema.VAL_ACCURACY] for point in curve] == [0.0, 0.0, 0.0, 0.3, 0.3, 0.3, 0.6, 0.6]
    assert [point[schema.TEST_LOSS] for point in curve] == [1.0, 1.0, 1.0, 0.85, 0.85, 0.85, 0.7, 0.7]
    assert all(point[method_score_name(name)] == 0.0 for point in curve for name in schema.SCORES)
    referee.finish(curve)  # The last point carried 280's score: it is rescored on its own psi.
    assert referee.evaluator.seen == [0, 3, 6, 7]
    assert curve[-1][schema.VAL_ACCURACY] == 0.7 and curve[-1][REFEREE_SIMULATED_SAMPLES] == 310
    referee.finish(curve)  # Already fresh: nothing more.
    assert referee.evaluator.seen == [0, 3, 6, 7]

    with pytest.raises(ConfigError, match=r"referee_every_samples=-1"):
        Referee(problem, seed=0, every_samples=-1)
