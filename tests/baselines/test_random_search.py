"""Random search draws inside the search box and on the simplex, uniformly; the default scores psi once."""

import math

import numpy as np
import pytest
from baseline_fakes import SAMPLES_PER_EVALUATION, STEPS_PER_EVALUATION, DistanceEvaluator, problem_for, run_for

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import RandomSearch, UntunedDefault
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators.base import Simulator
from autosimulate_tf.simulators.gmm import GaussianMixtureSimulator
from autosimulate_tf.simulators.pools import CategoricalPoolsSimulator
from autosimulate_tf.simulators.regression import SineRegressionSimulator

NUM_DRAWS = 400
# Five standard errors: a correct sampler fails one component's check with probability ~6e-7.
NUM_STANDARD_ERRORS = 5.0


def test_box_draws_stay_inside_and_have_the_uniform_mean():
    bound = 3.0
    problem = problem_for(GaussianMixtureSimulator(mean_bound=bound))
    evaluator = DistanceEvaluator(problem, best=np.zeros(8))
    run_for(RandomSearch(), problem, evaluator, NUM_DRAWS)
    means = np.array([psi["means"] for psi in evaluator.psis])
    assert means.shape == (NUM_DRAWS, 4, 2)
    assert np.all(np.abs(means) <= bound)
    # Uniform on [-b, b]: mean 0, standard deviation b / sqrt(3).
    tolerance = NUM_STANDARD_ERRORS * bound / math.sqrt(3) / math.sqrt(NUM_DRAWS)
    np.testing.assert_allclose(means.mean(axis=0), np.zeros((4, 2)), atol=tolerance)
    # ... and they fill the box: the extreme draws of 400 lie near its walls.
    assert means.max() > 0.9 * bound and means.min() < -0.9 * bound


def test_simplex_draws_are_probabilities_with_the_flat_dirichlet_mean():
    simulator = CategoricalPoolsSimulator()
    problem = problem_for(simulator)
    evaluator = DistanceEvaluator(problem, best=np.full(simulator.num_pools, 0.2))
    run_for(RandomSearch(), problem, evaluator, NUM_DRAWS)
    probabilities = np.array([psi["pool_probabilities"] for psi in evaluator.psis])
    num_pools = simulator.num_pools
    assert np.all(probabilities > 0)
    np.testing.assert_allclose(probabilities.sum(axis=-1), np.ones(NUM_DRAWS), atol=1e-5)
    # Flat Dirichlet over K pools: each probability has mean 1/K and variance (K - 1) / (K^2 (K + 1)).
    standard_deviation = math.sqrt((num_pools - 1) / (num_pools**2 * (num_pools + 1)))
    tolerance = NUM_STANDARD_ERRORS * standard_deviation / math.sqrt(NUM_DRAWS)
    np.testing.assert_allclose(probabilities.mean(axis=0), np.full(num_pools, 1 / num_pools), atol=tolerance)


@pytest.mark.parametrize("simulator_class", [GaussianMixtureSimulator, SineRegressionSimulator])
def test_curve_reports_the_best_candidate_so_far_in_the_problems_direction(simulator_class):
    simulator = simulator_class()
    problem = problem_for(simulator)
    evaluator = DistanceEvaluator(problem, best=np.ones(simulator.unconstrained_vector().size))
    curve = run_for(RandomSearch(), problem, evaluator, 20, seed=3)
    distances = [e[schema.VAL_LOSS] for e in evaluator.evaluations]
    for index, point in enumerate(curve, start=1):
        assert set(schema.CURVE_POINT_KEYS) <= set(point)
        assert point[schema.SIMULATED_SAMPLES] == SAMPLES_PER_EVALUATION * index
        assert point[schema.MODEL_STEPS] == STEPS_PER_EVALUATION * index
        assert point[schema.OBJECTIVE_EVALUATIONS] == index and point[schema.HVP_COUNT] == 0
        best = int(np.argmin(distances[:index]))  # closest psi: highest accuracy, lowest loss
        assert point[schema.VAL_LOSS] == distances[best]
        for name, value in point["psi"].items():
            np.testing.assert_allclose(value, evaluator.psis[best][name], rtol=1e-6)
        if problem.is_classification:
            assert point[schema.VAL_ACCURACY] == max(e[schema.VAL_ACCURACY] for e in evaluator.evaluations[:index])
        else:
            assert point[schema.VAL_ACCURACY] is None and point[schema.TEST_ACCURACY] is None
    # Same seed, same candidates.
    again = DistanceEvaluator(problem_for(simulator_class()), best=evaluator.best)
    run_for(RandomSearch(), again.problem, again, 20, seed=3)
    np.testing.assert_array_equal(np.array(again.unconstrained), np.array(evaluator.unconstrained))


def test_a_component_without_bounds_is_refused_before_any_evaluation():
    class Unbounded(GaussianMixtureSimulator):
        def __init__(self):
            Simulator.__init__(self, name="unbounded")
            self.add_parameter("means", np.zeros((4, 2), np.float32))

    problem = problem_for(GaussianMixtureSimulator())
    problem.simulator = Unbounded()
    evaluator = DistanceEvaluator(problem, best=np.zeros(8))
    with pytest.raises(ConfigError, match="'means' has no bounds"):
        RandomSearch().check(problem)
    with pytest.raises(ConfigError, match="'means' has no bounds"):
        run_for(RandomSearch(), problem, evaluator, 3)
    assert evaluator.evaluations == []


@pytest.mark.parametrize("simulator_class", [GaussianMixtureSimulator, SineRegressionSimulator])
def test_untuned_default_scores_the_initial_psi_once(simulator_class):
    simulator = simulator_class()
    initial = simulator.constrained_parameters_as_lists()
    problem = problem_for(simulator)
    evaluator = DistanceEvaluator(problem, best=np.zeros(simulator.unconstrained_vector().size))
    seen = []
    curve = UntunedDefault().run(problem, evaluator, 0, lambda points: seen.append(len(points)) or True)
    assert seen == [1]  # should_stop sees the one point (the referee rescores it there)
    assert len(curve) == 1 and len(evaluator.evaluations) == 1
    (point,) = curve
    assert point["psi"] == initial
    assert point[schema.SIMULATED_SAMPLES] == SAMPLES_PER_EVALUATION and point[schema.OBJECTIVE_EVALUATIONS] == 1
    assert point[schema.VAL_LOSS] == evaluator.evaluations[0][schema.VAL_LOSS]
    assert (point[schema.VAL_ACCURACY] is None) == (not problem.is_classification)
