"""Random search over psi and the untuned default simulator.

Random search draws psi uniformly inside the simulator's search box
(`Simulator.random_parameters`) and scores each candidate like a Learning to
Simulate sample: a fresh dataset, a model trained from scratch, its validation score
(accuracy, or loss for regression: `score.py`). The curve reports the best candidate so
far.

The untuned default scores the simulator's initial psi once: what a practitioner
gets without tuning.

Both follow the interface of every baseline: `check(problem)` raises `ConfigError` for a
problem the method cannot handle, before anything runs; `run(problem, evaluator, seed,
should_stop)` returns the curve (`curve.py`), calling `should_stop(curve)` after every
new point.
"""

import gin
import numpy as np

from autosimulate_tf.baselines.curve import add_evaluation, best_so_far, curve_point, new_totals
from autosimulate_tf.baselines.score import Score
from autosimulate_tf.train.scratch_training import evaluation_seed


@gin.configurable
class RandomSearch:
    """Uniform random search inside the simulator's bounds."""

    def check(self, problem) -> None:
        """Raises `ConfigError` when a psi component has no search box (naming it)."""
        problem.simulator.search_space()

    def run(self, problem, evaluator, seed: int, should_stop) -> list[dict]:
        """Evaluates random candidates until `should_stop(curve)`; returns the best-so-far curve.

        Args:
          problem: the `Problem`; its simulator's psi is overwritten by each candidate.
          evaluator: scores the simulator's current psi (`ScratchTrainingEvaluator.evaluate`).
          seed: run seed (candidates and evaluation seeds).
          should_stop: callable on the curve so far.
        """
        self.check(problem)
        simulator, score = problem.simulator, Score.for_problem(problem)
        rng = np.random.default_rng(seed)
        curve, best, totals = [], None, new_totals()
        while True:
            simulator.set_constrained_parameters(simulator.random_parameters(rng))
            evaluation = evaluator.evaluate(evaluation_seed(seed, len(curve)))
            add_evaluation(totals, evaluation)
            best = best_so_far(best, evaluation, simulator, score)
            curve.append(curve_point(totals, best, best["psi"]))
            if should_stop(curve):
                return curve


@gin.configurable
class UntunedDefault:
    """Scores the simulator's initial psi once (no tuning)."""

    def check(self, problem) -> None:
        """Any problem will do."""
        del problem

    def run(self, problem, evaluator, seed: int, should_stop) -> list[dict]:
        """One evaluation at the initial psi.

        `should_stop` is called once on the one-point curve, so a wrapper can see the point
        (the comparison's referee rescores it there); its answer does not matter.
        """
        evaluation = evaluator.evaluate(evaluation_seed(seed, 0))
        totals = new_totals()
        add_evaluation(totals, evaluation)
        curve = [curve_point(totals, evaluation, problem.simulator.constrained_parameters_as_lists())]
        should_stop(curve)
        return curve
