"""One scoring rule for every method: a fresh model trained on the psi the method would return.

Without a referee each method is scored by its own by-product: AutoSimulate by its
warm-started model, Learning to Simulate and random search by the *best* of their noisy
scratch-training evaluations so far (a maximum over noisy scores, which flatters them),
the default by its one evaluation. These are different quantities. With a referee
(`run_method.scoring = 'referee'`) every curve point is rescored by the same procedure:
take the psi the method would hand on at that point (AutoSimulate: its current psi;
Learning to Simulate: the policy mean; random search: its best candidate so far; the
default: the initial psi), render `referee/ScratchTrainingEvaluator.num_samples`
examples, train a fresh model and score it on the real validation (and test) data.

The referee uses one fixed seed per run seed, shared by every point and every method, so
two psi are compared on the same initial weights, minibatch order and latent draws
(common random numbers): score differences come from psi, not from training luck.
Its work is reporting: it is not counted in samples, steps, evaluations or time, and it
leaves the method's psi exactly as it found it.

A referee training can cost far more than a method's step (on the digits, a CNN on 5,000
renders against one outer iteration of 256), so `every_samples` can thin it out: a point
is rescored only once the method has simulated `every_samples` more samples since the
last rescored point; the points between carry that point's scores (and say so in
`referee_samples`). A crossing of the target is then seen at the first rescored point
past it, up to `every_samples` late, by the same rule for every method. The last point
of a run is always rescored (`finish`), so final accuracies are never stale.
"""

import json

import gin

from autosimulate_tf.baselines.scratch_training import ScratchTrainingEvaluator, evaluation_seed

REFEREE_SCOPE = "referee"
# Far from any index a search method uses for its own evaluations.
_REFEREE_SEED_INDEX = 2**30


class Referee:
    """Rescores curve points by a fresh model on the point's psi (see the module docstring)."""

    def __init__(self, problem: dict, seed: int, every_samples: int = 0):
        """Args:
        problem: `AutoSimulateTrainer.problem()` of the method's own problem: the same
          simulator object the method moves, the real data, model factory and loss.
        seed: the run seed; the referee's seed is derived from it.
        every_samples: rescore a point only when the method has simulated at least this
          many samples since the last rescored point (0: every point).
        """
        if every_samples < 0:
            raise ValueError(f"run_method.referee_every_samples={every_samples} must be >= 0.")
        self.every_samples = every_samples
        # Budget: `referee/ScratchTrainingEvaluator.*` bindings, else the unscoped ones.
        with gin.config_scope(REFEREE_SCOPE):
            self.evaluator = ScratchTrainingEvaluator(**problem)
        if self.evaluator.fine_tune:
            raise ValueError(
                "referee/ScratchTrainingEvaluator.fine_tune must be False: the referee trains from scratch "
                "(bind ScratchTrainingEvaluator.fine_tune for Learning to Simulate alone, in its scope)."
            )
        self.simulator = problem["simulator"]
        self.seed = evaluation_seed(seed, _REFEREE_SEED_INDEX)
        self._last = None  # (psi key, scores): points whose psi did not change reuse the score
        self._last_samples = None  # `samples` of the last point whose psi was rescored

    def score(self, point: dict, force: bool = False) -> None:
        """Replaces `point`'s accuracies by the referee's, keeping the method's own.

        The method's scores move to `method_val_accuracy` / `method_test_accuracy`;
        `val_accuracy` / `test_accuracy` become the referee's (so every summary, stopping
        rule and plot follows the referee). `referee_samples` is the `samples` of the
        point whose psi was scored: this point's own, unless `every_samples` made it carry
        an earlier score. `force` rescores regardless of `every_samples`.
        """
        if "method_val_accuracy" not in point:
            point["method_val_accuracy"] = point["val_accuracy"]
            point["method_test_accuracy"] = point["test_accuracy"]
        due = force or self._last_samples is None or point["samples"] - self._last_samples >= self.every_samples
        if due:
            key = json.dumps(point["psi"], sort_keys=True)
            if self._last is None or self._last[0] != key:
                self._last = (key, self._evaluate(point["psi"]))
            self._last_samples = point["samples"]
        scores = self._last[1]
        point["val_accuracy"] = scores["val_accuracy"]
        point["test_accuracy"] = scores["test_accuracy"]
        point["referee_samples"] = self._last_samples

    def finish(self, curve: list[dict]) -> None:
        """Rescores the run's last point if it carries an older score (final accuracies are fresh)."""
        if curve and curve[-1]["referee_samples"] != curve[-1]["samples"]:
            self.score(curve[-1], force=True)

    def _evaluate(self, psi: dict) -> dict:
        # The simulator is the method's own: set the point's psi, score, then restore the
        # exact unconstrained values so the method's trajectory is unchanged.
        saved = self.simulator.unconstrained_vector()
        try:
            self.simulator.set_constrained_parameters(psi)
            return self.evaluator.evaluate(self.seed)
        finally:
            self.simulator.set_unconstrained_vector(saved)


SCORINGS = ("method", "referee")


def check_scoring(scoring: str) -> None:
    """Raises a clear error for an unknown `run_method.scoring`."""
    if scoring not in SCORINGS:
        raise ValueError(f"run_method.scoring={scoring!r} must be one of {SCORINGS}.")
