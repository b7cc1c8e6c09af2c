"""Side-by-side comparison of AutoSimulate with the baselines, under one accounting."""

from autosimulate_tf.comparison.compare import merge_comparisons, run_comparison

__all__ = ["merge_comparisons", "run_comparison"]
