"""The one validation score a comparison ranks psi by, and the target it must reach.

A classification problem is ranked by validation accuracy (higher is better), a
regression problem (loss `squared_error`, no accuracy) by validation loss (lower is
better). Everything that reads "the score" goes through a `Score`: the stopping rule
and the first point reaching the target, the best-so-far of the search baselines,
Bayesian optimisation's objective and direction, Learning to Simulate's default
reward, and the comparison's summaries, table and plots. Nothing else asks which kind
of problem it is.

    score = Score.for_problem(problem)
    if score.is_better(evaluation[score.key], best[score.key]): ...

    target = Target.from_bindings(problem, target_accuracy=None, target_loss=0.02)
    target.is_reached_by(curve_point)
"""

import dataclasses
import math

from autosimulate_tf import results_schema as schema
from autosimulate_tf.errors import ConfigError, check


@dataclasses.dataclass(frozen=True)
class Score:
    """Which validation quantity ranks psi, and in which direction.

    Attributes:
      name: `"accuracy"` or `"loss"` (the suffix of the schema's score names).
      higher_is_better: accuracy: True; loss: False.
    """

    name: str
    higher_is_better: bool

    @classmethod
    def for_problem(cls, problem) -> "Score":
        """Accuracy for a classification `Problem`, loss for a regression one."""
        return ACCURACY if problem.is_classification else LOSS

    @property
    def key(self) -> str:
        """The validation score's name in evaluations and curve points (`val_accuracy` / `val_loss`)."""
        return schema.VAL_ACCURACY if self.higher_is_better else schema.VAL_LOSS

    @property
    def test_key(self) -> str:
        """The matching test score's name (`test_accuracy` / `test_loss`)."""
        return schema.TEST_ACCURACY if self.higher_is_better else schema.TEST_LOSS

    @property
    def label(self) -> str:
        """Axis and table label, e.g. `validation accuracy`."""
        return f"validation {self.name}"

    @property
    def optimization_direction(self) -> str:
        """`"maximize"` or `"minimize"` (Optuna's spelling)."""
        return "maximize" if self.higher_is_better else "minimize"

    def is_better(self, candidate: float, incumbent: float) -> bool:
        """Whether `candidate` is strictly better than `incumbent`; a NaN candidate never is."""
        if math.isnan(candidate):
            return False
        if math.isnan(incumbent):
            return True
        return candidate > incumbent if self.higher_is_better else candidate < incumbent

    def reaches(self, value: float, threshold: float) -> bool:
        """Whether `value` is at least as good as `threshold` (`>=` for accuracy, `<=` for loss)."""
        return value >= threshold if self.higher_is_better else value <= threshold

    def utility(self, value: float) -> float:
        """`value` turned into something to maximise: accuracy as is, the negative loss."""
        return value if self.higher_is_better else -value


ACCURACY = Score("accuracy", higher_is_better=True)
LOSS = Score("loss", higher_is_better=False)


@dataclasses.dataclass(frozen=True)
class Target:
    """A threshold on the problem's score: `val_accuracy >= value` or `val_loss <= value`."""

    score: Score
    value: float

    @property
    def binding(self) -> str:
        """The `run_comparison` argument that sets it: `target_accuracy` or `target_loss`."""
        return f"target_{self.score.name}"

    def is_reached_by(self, point: dict) -> bool:
        """Whether a curve point's validation score reaches the target."""
        return self.score.reaches(point[self.score.key], self.value)

    def as_json(self) -> dict:
        """`{"target_accuracy": value}` or `{"target_loss": value}`, as bound in gin."""
        return {self.binding: self.value}

    @classmethod
    def from_json(cls, record: dict) -> "Target":
        """The target a comparison.json or runs.json recorded (`as_json`'s keys)."""
        for score in (ACCURACY, LOSS):
            if record.get(f"target_{score.name}") is not None:
                return cls(score, float(record[f"target_{score.name}"]))
        raise ValueError("The record names neither target_accuracy nor target_loss.")

    @classmethod
    def from_bindings(cls, problem, target_accuracy: float | None, target_loss: float | None) -> "Target":
        """The target of `run_comparison`: exactly one of the two, the one that fits the problem.

        Raises:
          ConfigError: none or both given, the one that does not fit the problem's kind
            (accuracy for regression, loss for classification), or a value out of range.
        """
        score = Score.for_problem(problem)
        kind = "classification" if problem.is_classification else "regression"
        given = {"target_accuracy": target_accuracy, "target_loss": target_loss}
        bound = [name for name, value in given.items() if value is not None]
        wanted = f"target_{score.name}"
        check(
            len(bound) == 1 and bound[0] == wanted,
            f"run_comparison.{wanted} must be bound (and only it): the problem is {kind} (Problem.loss="
            f"{problem.loss!r}), so it is ranked by {score.label}; bound: "
            f"{', '.join(f'run_comparison.{name}={given[name]}' for name in bound) or 'neither target'}.",
        )
        value = float(given[wanted])
        if score is ACCURACY and not 0 < value <= 1:
            raise ConfigError(f"run_comparison.target_accuracy={value} must be in (0, 1].")
        if score is LOSS and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"run_comparison.target_loss={value} must be a finite number > 0.")
        return cls(score, value)
