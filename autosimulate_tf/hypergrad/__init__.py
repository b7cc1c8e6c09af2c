"""The approximate hypergradient: curvature products, solvers, influence weights, surrogate."""

from autosimulate_tf.hypergrad import curvature, influence, solvers, tree_math
from autosimulate_tf.hypergrad.estimator import (
    HypergradientResult,
    estimate_hypergradient,
)
from autosimulate_tf.hypergrad.objective import TaskObjective

__all__ = [
    "HypergradientResult",
    "TaskObjective",
    "curvature",
    "estimate_hypergradient",
    "influence",
    "solvers",
    "tree_math",
]
