"""The approximate hypergradient: curvature products, solvers, influence weights, surrogate."""

from autosimulate_tf.hypergrad import curvature, influence, solvers, tree_math
from autosimulate_tf.hypergrad.estimator import GeneratedData, HypergradientEstimator, HypergradientResult
from autosimulate_tf.hypergrad.objective import TaskObjective

__all__ = [
    "GeneratedData",
    "HypergradientEstimator",
    "HypergradientResult",
    "TaskObjective",
    "curvature",
    "influence",
    "solvers",
    "tree_math",
]
