"""Methods AutoSimulate is compared with, all scoring psi by training from scratch."""

from autosimulate_tf.baselines.bayesian_optimization import BayesianOptimization
from autosimulate_tf.baselines.learning_to_simulate import LearningToSimulate
from autosimulate_tf.baselines.random_search import RandomSearch, UntunedDefault
from autosimulate_tf.baselines.scratch_training import ScratchTrainingEvaluator

__all__ = ["BayesianOptimization", "LearningToSimulate", "RandomSearch", "ScratchTrainingEvaluator", "UntunedDefault"]
