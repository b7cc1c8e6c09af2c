"""The score that ranks psi (accuracy up, loss down), best-so-far in both directions, and the target."""

import math

import numpy as np
import pytest
from baseline_fakes import problem_for

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import ACCURACY, LOSS, Score, Target
from autosimulate_tf.baselines.curve import add_evaluation, best_so_far, curve_point, new_totals
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators.gmm import GaussianMixtureSimulator
from autosimulate_tf.simulators.regression import SineRegressionSimulator


def test_score_follows_the_problem_kind():
    classification, regression = problem_for(GaussianMixtureSimulator()), problem_for(SineRegressionSimulator())
    assert Score.for_problem(classification) is ACCURACY
    assert Score.for_problem(regression) is LOSS
    assert (ACCURACY.key, ACCURACY.test_key, ACCURACY.optimization_direction) == (
        schema.VAL_ACCURACY,
        schema.TEST_ACCURACY,
        "maximize",
    )
    assert (LOSS.key, LOSS.test_key, LOSS.optimization_direction) == (schema.VAL_LOSS, schema.TEST_LOSS, "minimize")
    assert ACCURACY.label == "validation accuracy" and LOSS.label == "validation loss"


def test_directions_of_better_reaching_and_utility():
    assert ACCURACY.is_better(0.9, 0.8) and not ACCURACY.is_better(0.8, 0.9) and not ACCURACY.is_better(0.8, 0.8)
    assert LOSS.is_better(0.1, 0.2) and not LOSS.is_better(0.2, 0.1) and not LOSS.is_better(0.2, 0.2)
    for score in (ACCURACY, LOSS):
        assert not score.is_better(math.nan, 0.5)  # a diverged training never becomes the best
        assert score.is_better(0.5, math.nan)
    assert ACCURACY.reaches(0.9, 0.9) and not ACCURACY.reaches(0.89, 0.9)
    assert LOSS.reaches(0.05, 0.05) and not LOSS.reaches(0.051, 0.05)
    assert ACCURACY.utility(0.7) == 0.7 and LOSS.utility(0.3) == -0.3


def evaluation(val_loss, val_accuracy):
    return {
        schema.VAL_LOSS: val_loss,
        schema.VAL_ACCURACY: val_accuracy,
        schema.TEST_LOSS: val_loss + 1,
        schema.TEST_ACCURACY: None if val_accuracy is None else val_accuracy - 0.1,
        schema.SIMULATED_SAMPLES: 10,
        schema.MODEL_STEPS: 3,
        schema.WALL_CLOCK_S: 0.5,
        schema.RENDER_WALL_CLOCK_S: 0.1,
    }


@pytest.mark.parametrize(
    ("simulator_class", "best_indices"),
    # Accuracies 0.3, 0.2, 0.9, 0.4 (highest wins); losses 0.5, 0.2, 0.7, 0.1 (lowest wins).
    [(GaussianMixtureSimulator, [0, 0, 2, 2]), (SineRegressionSimulator, [0, 1, 1, 3])],
)
def test_best_so_far_keeps_the_better_evaluation_and_its_psi(simulator_class, best_indices):
    simulator = simulator_class()
    score = Score.for_problem(problem_for(simulator))
    classification = simulator.num_classes is not None
    losses, accuracies = [0.5, 0.2, 0.7, 0.1], [0.3, 0.2, 0.9, 0.4]
    evaluations, psis, best = [], [], None
    for index, (loss, accuracy) in enumerate(zip(losses, accuracies, strict=True)):
        simulator.set_unconstrained_vector(np.full(simulator.unconstrained_vector().size, 0.1 * index))
        psis.append(simulator.constrained_parameters_as_lists())
        evaluations.append(evaluation(loss, accuracy if classification else None))
        best = best_so_far(best, evaluations[-1], simulator, score)
        assert best[score.key] == evaluations[best_indices[index]][score.key]
        assert best["psi"] == psis[best_indices[index]]


def test_totals_and_curve_points_use_the_schema_names():
    totals = new_totals()
    assert set(totals) == set(schema.COSTS) and all(value == 0 for value in totals.values())
    add_evaluation(totals, evaluation(0.2, None))
    add_evaluation(totals, evaluation(0.1, None))
    assert totals == {
        schema.SIMULATED_SAMPLES: 20,
        schema.MODEL_STEPS: 6,
        schema.HVP_COUNT: 0,
        schema.OBJECTIVE_EVALUATIONS: 2,
        schema.WALL_CLOCK_S: 1.0,
        schema.RENDER_WALL_CLOCK_S: 0.2,
    }
    point = curve_point(totals, evaluation(0.1, None), {"x": [1.0]}, policy_std=0.5)
    assert set(point) == {*schema.CURVE_POINT_KEYS, "policy_std"}
    assert point[schema.VAL_ACCURACY] is None and point[schema.TEST_LOSS] == 1.1 and point["psi"] == {"x": [1.0]}


def test_target_is_the_one_binding_that_fits_the_problem():
    classification, regression = problem_for(GaussianMixtureSimulator()), problem_for(SineRegressionSimulator())
    accuracy_target = Target.from_bindings(classification, target_accuracy=0.9, target_loss=None)
    assert accuracy_target == Target(ACCURACY, 0.9) and accuracy_target.binding == "target_accuracy"
    loss_target = Target.from_bindings(regression, target_accuracy=None, target_loss=0.05)
    assert loss_target == Target(LOSS, 0.05) and loss_target.binding == "target_loss"
    assert accuracy_target.is_reached_by({schema.VAL_ACCURACY: 0.9, schema.VAL_LOSS: 9.0})
    assert not accuracy_target.is_reached_by({schema.VAL_ACCURACY: 0.89, schema.VAL_LOSS: 0.0})
    assert loss_target.is_reached_by({schema.VAL_ACCURACY: None, schema.VAL_LOSS: 0.05})
    assert not loss_target.is_reached_by({schema.VAL_ACCURACY: None, schema.VAL_LOSS: 0.06})
    for target in (accuracy_target, loss_target):
        assert Target.from_json(target.as_json()) == target
    assert loss_target.as_json() == {"target_loss": 0.05}


@pytest.mark.parametrize(
    ("regression", "accuracy", "loss", "match"),
    [
        (
            True,
            0.9,
            None,
            r"run_comparison\.target_loss must be bound .* regression .*run_comparison\.target_accuracy=0\.9",
        ),
        (False, None, 0.1, r"run_comparison\.target_accuracy must be bound .* classification .*target_loss=0\.1"),
        (False, None, None, r"run_comparison\.target_accuracy must be bound .*neither target"),
        (False, 0.9, 0.1, r"run_comparison\.target_accuracy must be bound \(and only it\)"),
        (False, 1.5, None, r"run_comparison\.target_accuracy=1\.5 must be in \(0, 1\]"),
        (True, None, -0.1, r"run_comparison\.target_loss=-0\.1 must be a finite number > 0"),
        (True, None, math.inf, r"run_comparison\.target_loss=inf must be a finite number > 0"),
    ],
)
def test_a_missing_or_mismatched_target_is_a_config_error(regression, accuracy, loss, match):
    problem = problem_for(SineRegressionSimulator() if regression else GaussianMixtureSimulator())
    with pytest.raises(ConfigError, match=match):
        Target.from_bindings(problem, target_accuracy=accuracy, target_loss=loss)
