"""The approximate hypergradient: curvature products, solvers, influence weights, surrogate."""

from autosimulate_tf.hypergrad import curvature, influence, solvers, step_rules, tree_math
from autosimulate_tf.hypergrad.estimator import GeneratedData, HypergradientEstimator, HypergradientResult
from autosimulate_tf.hypergrad.objective import TaskObjective
from autosimulate_tf.hypergrad.step_rules import NaturalGradientStep, PlainStep

__all__ = [
    "GeneratedData",
    "HypergradientEstimator",
    "HypergradientResult",
    "NaturalGradientStep",
    "PlainStep",
    "TaskObjective",
    "curvature",
    "influence",
    "solvers",
    "step_rules",
    "tree_math",
]
