"""Random search over psi and the untuned default simulator.

Random search draws psi uniformly inside the simulator's search box
(`Simulator.random_parameters`) and scores each candidate like a Learning to
Simulate sample: a fresh dataset, a model trained from scratch, validation
accuracy. The curve reports the best candidate so far.

The untuned default scores the simulator's initial psi once: what a practitioner
gets without tuning.
"""

import gin
import numpy as np

from autosimulate_tf.baselines.curve import add_evaluation, best_so_far, curve_point, new_totals
from autosimulate_tf.baselines.scratch_training import evaluation_seed


@gin.configurable
class RandomSearch:
    """Uniform random search inside the simulator's bounds."""

    def run(self, simulator, evaluator, seed: int, should_stop) -> list[dict]:
        """Evaluates random candidates until `should_stop(curve)`; returns the best-so-far curve."""
        rng = np.random.default_rng(seed)
        curve, best, totals = [], None, new_totals()
        while True:
            simulator.set_constrained_parameters(simulator.random_parameters(rng))
            evaluation = evaluator.evaluate(evaluation_seed(seed, totals["evaluations"]))
            add_evaluation(totals, evaluation)
            best = best_so_far(best, evaluation, simulator)
            curve.append(curve_point(totals, best, best["psi"]))
            if should_stop(curve):
                return curve


@gin.configurable
class UntunedDefault:
    """Scores the simulator's initial psi once (no tuning)."""

    def run(self, simulator, evaluator, seed: int, should_stop) -> list[dict]:
        """One evaluation at the initial psi.

        `should_stop` is called once on the one-point curve, so a wrapper can see the point
        (the comparison's referee rescores it there); its answer does not matter.
        """
        evaluation = evaluator.evaluate(evaluation_seed(seed, 0))
        totals = new_totals()
        add_evaluation(totals, evaluation)
        curve = [curve_point(totals, evaluation, simulator.constrained_parameters_as_lists())]
        should_stop(curve)
        return curve
