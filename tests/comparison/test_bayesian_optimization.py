"""Bayesian optimisation (Optuna's TPE) over psi: search space, accounting, and that it models scores."""

import sys

import numpy as np
import pytest

from autosimulate_tf.baselines import BayesianOptimization, RandomSearch
from autosimulate_tf.simulators.gmm import GaussianMixtureSimulator
from autosimulate_tf.simulators.pools import CategoricalPoolsSimulator

pytest.importorskip("optuna")  # Installed by the `test` extra; optional for users (`.[bo]`).

M, STEPS = 50, 7  # What the fake evaluator reports as each evaluation's cost.


class QuadraticEvaluator:
    """Stands in for scratch training: the score is a smooth function of psi with a known best.

    The score is 1 - mean squared distance of the simulator's flattened psi to `best`, so a
    method that models scores should find better psi than blind draws at equal evaluations.
    """

    def __init__(self, simulator, best: np.ndarray):
        self.simulator, self.best, self.scores, self.psis = simulator, best, [], []

    def evaluate(self, seed: int) -> dict:
        psi = self.simulator.constrained_parameters()
        flat = np.concatenate([np.ravel(value) for value in psi.values()])
        score = 1.0 - float(np.mean((flat - self.best) ** 2))
        self.scores.append(score)
        self.psis.append(psi)
        return {"val_accuracy": score, "test_accuracy": score, "samples": M, "steps": STEPS, "time_s": 0.001}


def run_for(method, simulator, evaluator, evaluations: int, seed: int = 0) -> list[dict]:
    return method.run(simulator, evaluator, seed, lambda curve: curve[-1]["objective_evaluations"] >= evaluations)


def test_tpe_stays_in_the_search_box_and_accounts_like_random_search():
    gmm = GaussianMixtureSimulator(mean_bound=4.0)
    evaluator = QuadraticEvaluator(gmm, best=np.full(8, 1.5, np.float32))
    curve = run_for(BayesianOptimization(num_startup_trials=5), gmm, evaluator, 30)
    assert len(curve) == 30
    means = np.array([psi["means"] for psi in evaluator.psis])
    assert means.shape == (30, 4, 2) and np.all(np.abs(means) <= 4.0 + 1e-5)
    assert len({means[i].tobytes() for i in range(30)}) == 30  # every trial a new candidate
    for index, point in enumerate(curve, start=1):
        assert point["samples"] == M * index and point["model_steps"] == STEPS * index
        assert point["objective_evaluations"] == index and point["hvps"] == 0
        assert point["time_s"] >= 0.001 * index  # evaluations plus the sampler's own time
        assert point["val_accuracy"] == max(evaluator.scores[:index])  # best so far
    best = int(np.argmax(evaluator.scores))
    np.testing.assert_allclose(curve[-1]["psi"]["means"], means[best], rtol=1e-6)

    pools = CategoricalPoolsSimulator()
    evaluator = QuadraticEvaluator(pools, best=np.array([0.5, 0.5, 0.0, 0.0, 0.0], np.float32))
    run_for(BayesianOptimization(num_startup_trials=3), pools, evaluator, 12)
    probabilities = np.array([psi[pools.parameter_names[0]] for psi in evaluator.psis])
    assert np.all(probabilities > 0) and probabilities.sum(axis=-1) == pytest.approx(np.ones(12), abs=1e-5)


def test_tpe_models_the_scores_where_random_search_draws_blindly():
    """On a smooth score TPE's later proposals beat its random start, and beat random search."""
    best = np.array([1.5, 1.5, -1.5, -1.5, -1.5, 1.5, 1.5, -1.5], np.float32)
    tpe_scores, random_scores = [], []
    for seed in range(3):
        gmm = GaussianMixtureSimulator(mean_bound=4.0)
        tpe = QuadraticEvaluator(gmm, best)
        run_for(BayesianOptimization(num_startup_trials=10), gmm, tpe, 80, seed)
        gmm = GaussianMixtureSimulator(mean_bound=4.0)
        blind = QuadraticEvaluator(gmm, best)
        run_for(RandomSearch(), gmm, blind, 80, seed)
        # Uniform draws in the box score 1 - E[(u - b)^2] ~ -5.1 on average whatever their order; TPE's
        # last 20 proposals must do clearly better than its 10 random startup trials.
        assert np.mean(tpe.scores[-20:]) > np.mean(tpe.scores[:10]) + 2.0, seed
        tpe_scores.append(max(tpe.scores))
        random_scores.append(max(blind.scores))
    assert np.median(tpe_scores) > np.median(random_scores)


def test_custom_search_space_and_missing_optuna_are_refused_clearly(monkeypatch):
    class OwnSpace(GaussianMixtureSimulator):
        def random_parameters(self, rng):
            return {"means": rng.normal(size=(4, 2)).astype(np.float32)}

    own = OwnSpace()
    with pytest.raises(ValueError, match="OwnSpace overrides random_parameters"):
        run_for(BayesianOptimization(), own, QuadraticEvaluator(own, np.zeros(8)), 2)
    with pytest.raises(ValueError, match="num_startup_trials=0"):
        BayesianOptimization(num_startup_trials=0)
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if optuna were not installed
    gmm = GaussianMixtureSimulator()
    with pytest.raises(ImportError, match=r"pip install -e '\.\[bo\]'"):
        run_for(BayesianOptimization(), gmm, QuadraticEvaluator(gmm, np.zeros(8)), 2)
