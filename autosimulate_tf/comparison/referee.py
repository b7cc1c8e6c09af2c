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
Its work is reporting: it is not counted in any of the method's costs, and it
leaves the method's psi exactly as it found it.

A referee training can cost far more than a method's step (on the digits, a CNN on 5,000
renders against one outer iteration of 256), so `every_samples` can thin it out: a point
is rescored only once the method has simulated `every_samples` more samples since the
last rescored point; the points between carry that point's scores (and say so in
`referee_simulated_samples`). A crossing of the target is then seen at the first rescored point
past it, up to `every_samples` late, by the same rule for every method. The last point
of a run is always rescored (`finish`), so final scores are never stale.
"""

import json

import gin

from autosimulate_tf import results_schema as schema
from autosimulate_tf.errors import check
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator, evaluation_seed

REFEREE = "referee"
REFEREE_SCOPE = REFEREE
SCORINGS = ("method", REFEREE)
# Far from any index a search method uses for its own evaluations.
_REFEREE_SEED_INDEX = 2**30
# The point's key that says whose psi its referee scores are: the `simulated_samples` of that point.
REFEREE_SIMULATED_SAMPLES = f"referee_{schema.SIMULATED_SAMPLES}"


def method_score_name(name: str) -> str:
    """Where a point keeps the method's own score once the referee's replaces it (`method_val_accuracy`)."""
    return f"method_{name}"


class Referee:
    """Rescores curve points by a fresh model on the point's psi (see the module docstring)."""

    def __init__(self, problem, seed: int, every_samples: int = 0):
        """Args:
        problem: the method's own `Problem`: the same simulator object the method moves,
          the real data, model factory and loss.
        seed: the run seed; the referee's seed is derived from it.
        every_samples: rescore a point only when the method has simulated at least this
          many samples since the last rescored point (0: every point).

        Raises:
          ConfigError: a negative `every_samples`, or a fine-tuning referee evaluator.
        """
        check(every_samples >= 0, f"run_method.referee_every_samples={every_samples} must be >= 0.")
        self.every_samples = every_samples
        # Budget: `referee/ScratchTrainingEvaluator.*` bindings, else the unscoped ones.
        with gin.config_scope(REFEREE_SCOPE):
            self.evaluator = ScratchTrainingEvaluator(problem)
        check(
            not self.evaluator.fine_tune,
            "referee/ScratchTrainingEvaluator.fine_tune must be False: the referee trains from scratch "
            "(bind ScratchTrainingEvaluator.fine_tune for Learning to Simulate alone, in its scope).",
        )
        self.simulator = problem.simulator
        self.seed = evaluation_seed(seed, _REFEREE_SEED_INDEX)
        self._last = None  # (psi key, scores): points whose psi did not change reuse the score
        self._last_samples = None  # `simulated_samples` of the last point whose psi was rescored

    def score(self, point: dict, force: bool = False) -> None:
        """Replaces `point`'s scores by the referee's, keeping the method's own.

        The method's scores (`results_schema.SCORES`) move to `method_val_loss`,
        `method_val_accuracy`, ...; `val_loss`, `val_accuracy`, ... become the referee's
        (so every summary, stopping rule and plot follows the referee).
        `referee_simulated_samples` is the `simulated_samples` of the point whose psi was
        scored: this point's own, unless `every_samples` made it carry an earlier score.
        `force` rescores regardless of `every_samples`.
        """
        if method_score_name(schema.VAL_LOSS) not in point:
            for name in schema.SCORES:
                point[method_score_name(name)] = point[name]
        samples = point[schema.SIMULATED_SAMPLES]
        if force or self._last_samples is None or samples - self._last_samples >= self.every_samples:
            key = json.dumps(point[schema.PSI], sort_keys=True)
            if self._last is None or self._last[0] != key:
                self._last = (key, self._evaluate(point[schema.PSI]))
            self._last_samples = samples
        scores = self._last[1]
        for name in schema.SCORES:
            point[name] = scores[name]
        point[REFEREE_SIMULATED_SAMPLES] = self._last_samples

    def finish(self, curve: list[dict]) -> None:
        """Rescores the run's last point if it carries an older score (final scores are fresh)."""
        if curve and curve[-1][REFEREE_SIMULATED_SAMPLES] != curve[-1][schema.SIMULATED_SAMPLES]:
            self.score(curve[-1], force=True)

    def _evaluate(self, psi: dict) -> dict:
        # The simulator is the method's own: score the point's psi, then restore the exact
        # unconstrained values so the method's trajectory is unchanged.
        with self.simulator.temporary_psi(constrained=psi):
            return self.evaluator.evaluate(self.seed)


def check_scoring(scoring: str) -> None:
    """Raises `ConfigError` for an unknown `run_method.scoring`."""
    check(scoring in SCORINGS, f"run_method.scoring={scoring!r} must be one of {SCORINGS}.")
