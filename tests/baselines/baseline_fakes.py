"""A fast stand-in for fresh-model training, and small problems to run the baselines on.

`DistanceEvaluator.evaluate` scores the simulator's current psi by its mean squared distance
to a known best psi, instantly, with the keys and costs of `ScratchTrainingEvaluator`, so a
baseline's search logic runs in milliseconds per evaluation and its choices can be checked
exactly.
"""

import numpy as np

from autosimulate_tf import results_schema as schema
from autosimulate_tf.data.real import xor_mixture_real_data
from autosimulate_tf.models.factories import mlp
from autosimulate_tf.problem import Problem
from autosimulate_tf.simulators.regression import sine_regression_real_data

SAMPLES_PER_EVALUATION = 50  # What every fake evaluation reports as its cost.
STEPS_PER_EVALUATION = 7
SECONDS_PER_EVALUATION = 0.001


def problem_for(simulator) -> Problem:
    """A `Problem` around `simulator`: the XOR real data for a classifier, the sine curve's for a regressor."""
    if simulator.num_classes is None:
        real_data = sine_regression_real_data(num_validation=8, num_test=8)
        return Problem(simulator=simulator, real_data=real_data, model_fn=mlp, loss="squared_error")
    real_data = xor_mixture_real_data(num_validation=8, num_test=8)
    return Problem(simulator=simulator, real_data=real_data, model_fn=mlp, loss="softmax_cross_entropy")


def flat_psi(simulator) -> np.ndarray:
    """The simulator's constrained psi, every component flattened, in creation order."""
    return np.concatenate([np.ravel(value) for value in simulator.constrained_parameters().values()])


class DistanceEvaluator:
    """Scores psi by `d = mean((flat psi - best)^2)`: accuracy `1 - d` (classification) or loss `d`.

    Records what it saw: `psis` (constrained, by name), `unconstrained` (vectors),
    `evaluations` (what it returned), `seeds`, and `kept_after` (how many evaluations had
    run when `keep_weights` was called).
    """

    def __init__(self, problem, best, fine_tune: bool = False):
        self.problem, self.best, self.fine_tune = problem, np.asarray(best, np.float64), fine_tune
        self.psis, self.unconstrained, self.evaluations, self.seeds, self.kept_after = [], [], [], [], []

    def distance(self) -> float:
        return float(np.mean((flat_psi(self.problem.simulator) - self.best) ** 2))

    def evaluate(self, seed: int) -> dict:
        distance = self.distance()
        accuracy = 1.0 - distance if self.problem.is_classification else None
        evaluation = {
            schema.VAL_LOSS: distance,
            schema.VAL_ACCURACY: accuracy,
            schema.TEST_LOSS: distance,
            schema.TEST_ACCURACY: accuracy,
            schema.SIMULATED_SAMPLES: SAMPLES_PER_EVALUATION,
            schema.DROPPED_SAMPLES: 0,
            schema.MODEL_STEPS: STEPS_PER_EVALUATION,
            schema.WALL_CLOCK_S: SECONDS_PER_EVALUATION,
            schema.RENDER_WALL_CLOCK_S: SECONDS_PER_EVALUATION / 2,
        }
        self.psis.append(self.problem.simulator.constrained_parameters())
        self.unconstrained.append(self.problem.simulator.unconstrained_vector())
        self.evaluations.append(evaluation)
        self.seeds.append(seed)
        return evaluation

    def keep_weights(self) -> None:
        self.kept_after.append(len(self.evaluations))


def run_for(method, problem, evaluator, evaluations: int, seed: int = 0) -> list[dict]:
    """`method.run` stopped after `evaluations` objective evaluations."""
    return method.run(problem, evaluator, seed, lambda curve: curve[-1][schema.OBJECTIVE_EVALUATIONS] >= evaluations)
