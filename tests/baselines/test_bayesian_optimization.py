"""Bayesian optimisation (Optuna's TPE) over psi: search space, accounting, direction, and that it models scores."""

import sys

import numpy as np
import pytest
from baseline_fakes import (
    SAMPLES_PER_EVALUATION,
    SECONDS_PER_EVALUATION,
    STEPS_PER_EVALUATION,
    DistanceEvaluator,
    problem_for,
    run_for,
)

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import BayesianOptimization, RandomSearch
from autosimulate_tf.baselines.bayesian_optimization import _distributions, _psi_from, search_space
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators.gmm import GaussianMixtureSimulator
from autosimulate_tf.simulators.pools import CategoricalPoolsSimulator
from autosimulate_tf.simulators.regression import SineRegressionSimulator
from autosimulate_tf.simulators.slow import SlowRenderSimulator

optuna = pytest.importorskip("optuna")  # Installed by the `test` extra; optional for users (`.[bo]`).


class OwnSpace(GaussianMixtureSimulator):
    """A simulator with its own random search space, which TPE cannot read."""

    def random_parameters(self, rng):
        return {"means": rng.normal(size=(4, 2)).astype(np.float32)}


def test_search_space_is_the_box_and_the_simplex_with_a_weight_floor():
    assert search_space(GaussianMixtureSimulator(mean_bound=3.0)) == {"means": ("box", (4, 2), -3.0, 3.0)}
    pools = CategoricalPoolsSimulator()
    ((name, (kind, shape, low, high)),) = search_space(pools).items()
    assert (name, kind, shape, high) == ("pool_probabilities", "simplex", (pools.num_pools,), 1.0)
    assert 0 < low < 0.01  # every normalised weight stays positive, as SoftmaxCentered needs
    # A wrapper searches the wrapped simulator's space.
    assert search_space(SlowRenderSimulator(GaussianMixtureSimulator(), work_ms=0.0)) == search_space(
        GaussianMixtureSimulator()
    )


def test_one_float_per_scalar_and_back_to_constrained_psi():
    space = {"means": ("box", (2, 2), -1.0, 1.0), "mix": ("simplex", (3,), 0.001, 1.0)}
    distributions = _distributions(optuna, space)
    assert list(distributions) == ["means/0", "means/1", "means/2", "means/3", "mix/0", "mix/1", "mix/2"]
    assert (distributions["means/3"].low, distributions["means/3"].high) == (-1.0, 1.0)
    assert (distributions["mix/0"].low, distributions["mix/0"].high) == (0.001, 1.0)
    params = {"means/0": 0.1, "means/1": -0.2, "means/2": 0.3, "means/3": 0.9, "mix/0": 1.0, "mix/1": 3.0, "mix/2": 4.0}
    psi = _psi_from(params, space)
    np.testing.assert_allclose(psi["means"], [[0.1, -0.2], [0.3, 0.9]], rtol=1e-6)  # row-major, as flattened
    np.testing.assert_allclose(psi["mix"], [0.125, 0.375, 0.5], rtol=1e-6)  # weights normalised onto the simplex
    assert psi["means"].dtype == np.float32


def test_tpe_stays_in_the_search_box_and_accounts_like_random_search():
    problem = problem_for(GaussianMixtureSimulator(mean_bound=4.0))
    evaluator = DistanceEvaluator(problem, best=np.full(8, 1.5))
    curve = run_for(BayesianOptimization(num_startup_trials=5), problem, evaluator, 30)
    assert len(curve) == 30
    means = np.array([psi["means"] for psi in evaluator.psis])
    assert means.shape == (30, 4, 2) and np.all(np.abs(means) <= 4.0 + 1e-5)
    assert len({means[i].tobytes() for i in range(30)}) == 30  # every trial a new candidate
    scores = [e[schema.VAL_ACCURACY] for e in evaluator.evaluations]
    for index, point in enumerate(curve, start=1):
        assert point[schema.SIMULATED_SAMPLES] == SAMPLES_PER_EVALUATION * index
        assert point[schema.MODEL_STEPS] == STEPS_PER_EVALUATION * index
        assert point[schema.OBJECTIVE_EVALUATIONS] == index and point[schema.HVP_COUNT] == 0
        assert point[schema.WALL_CLOCK_S] >= SECONDS_PER_EVALUATION * index  # evaluations plus the sampler's time
        assert point["sampler_s"] >= 0
        assert point[schema.VAL_ACCURACY] == max(scores[:index])  # best so far
    np.testing.assert_allclose(curve[-1]["psi"]["means"], means[int(np.argmax(scores))], rtol=1e-6)

    pools = CategoricalPoolsSimulator()
    evaluator = DistanceEvaluator(problem_for(pools), best=[0.5, 0.5, 0.0, 0.0, 0.0])
    run_for(BayesianOptimization(num_startup_trials=3), evaluator.problem, evaluator, 12)
    probabilities = np.array([psi["pool_probabilities"] for psi in evaluator.psis])
    assert np.all(probabilities > 0) and probabilities.sum(axis=-1) == pytest.approx(np.ones(12), abs=1e-5)


def test_regression_minimises_the_validation_loss():
    """On a regression problem TPE minimises the loss: later proposals lower it, the curve keeps the minimum."""
    problem = problem_for(SineRegressionSimulator())
    evaluator = DistanceEvaluator(problem, best=[1.5, 0.5])
    curve = run_for(BayesianOptimization(num_startup_trials=8), problem, evaluator, 40)
    losses = [e[schema.VAL_LOSS] for e in evaluator.evaluations]
    assert [point[schema.VAL_LOSS] for point in curve] == [min(losses[: i + 1]) for i in range(40)]
    assert all(point[schema.VAL_ACCURACY] is None for point in curve)
    assert np.mean(losses[-10:]) < np.mean(losses[:8])  # it models the scores in the right direction


def test_a_diverged_evaluation_is_a_failed_trial_not_the_best():
    problem = problem_for(SineRegressionSimulator())
    evaluator = DistanceEvaluator(problem, best=[1.5, 0.5])
    evaluate = evaluator.evaluate

    def diverging_first(seed):
        result = evaluate(seed)
        return {**result, schema.VAL_LOSS: float("nan")} if len(evaluator.evaluations) == 1 else result

    evaluator.evaluate = diverging_first
    curve = run_for(BayesianOptimization(num_startup_trials=2), problem, evaluator, 4)
    assert np.isnan(curve[0][schema.VAL_LOSS])  # nothing better seen yet
    assert all(np.isfinite(point[schema.VAL_LOSS]) for point in curve[1:])


def test_tpe_models_the_scores_where_random_search_draws_blindly():
    """On a smooth score TPE's later proposals beat its random start, and beat random search."""
    best = np.array([1.5, 1.5, -1.5, -1.5, -1.5, 1.5, 1.5, -1.5])
    tpe_scores, random_scores = [], []
    for seed in range(3):
        tpe = DistanceEvaluator(problem_for(GaussianMixtureSimulator(mean_bound=4.0)), best)
        run_for(BayesianOptimization(num_startup_trials=10), tpe.problem, tpe, 80, seed)
        blind = DistanceEvaluator(problem_for(GaussianMixtureSimulator(mean_bound=4.0)), best)
        run_for(RandomSearch(), blind.problem, blind, 80, seed)
        tpe_accuracies = [e[schema.VAL_ACCURACY] for e in tpe.evaluations]
        # Uniform draws in the box score 1 - E[(u - b)^2] ~ -5.1 on average whatever their order; TPE's
        # last 20 proposals must do clearly better than its 10 random startup trials.
        assert np.mean(tpe_accuracies[-20:]) > np.mean(tpe_accuracies[:10]) + 2.0, seed
        tpe_scores.append(max(tpe_accuracies))
        random_scores.append(max(e[schema.VAL_ACCURACY] for e in blind.evaluations))
    assert np.median(tpe_scores) > np.median(random_scores)


def test_custom_search_space_and_missing_optuna_are_refused_before_any_evaluation(monkeypatch):
    own = problem_for(OwnSpace())
    evaluator = DistanceEvaluator(own, np.zeros(8))
    with pytest.raises(ConfigError, match="OwnSpace overrides random_parameters"):
        BayesianOptimization().check(own)
    with pytest.raises(ConfigError, match="OwnSpace overrides random_parameters"):
        run_for(BayesianOptimization(), own, evaluator, 2)
    assert evaluator.evaluations == []
    with pytest.raises(ConfigError, match=r"BayesianOptimization\.num_startup_trials=0 must be >= 1"):
        BayesianOptimization(num_startup_trials=0)
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if optuna were not installed
    problem = problem_for(GaussianMixtureSimulator())
    with pytest.raises(ImportError, match=r"pip install -e '\.\[bo\]'"):
        BayesianOptimization().check(problem)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[bo\]'"):
        run_for(BayesianOptimization(), problem, DistanceEvaluator(problem, np.zeros(8)), 2)
