"""Side-by-side comparison of AutoSimulate with the baselines, under one accounting."""

from autosimulate_tf.comparison.compare import run_comparison

__all__ = ["run_comparison"]
