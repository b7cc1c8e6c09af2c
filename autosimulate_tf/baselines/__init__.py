"""Methods AutoSimulate is compared with, all scoring psi by training from scratch.

Every baseline has `check(problem)` (raises `ConfigError` for a problem it cannot handle,
before anything runs) and `run(problem, evaluator, seed, should_stop) -> curve`
(`curve.py`); `score.py` says which validation score ranks psi.
"""

from autosimulate_tf.baselines.bayesian_optimization import BayesianOptimization
from autosimulate_tf.baselines.learning_to_simulate import LearningToSimulate
from autosimulate_tf.baselines.random_search import RandomSearch, UntunedDefault
from autosimulate_tf.baselines.score import ACCURACY, LOSS, Score, Target

__all__ = [
    "ACCURACY",
    "LOSS",
    "BayesianOptimization",
    "LearningToSimulate",
    "RandomSearch",
    "Score",
    "Target",
    "UntunedDefault",
]
