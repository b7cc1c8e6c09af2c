"""Keras task models (gin-configurable factories) and per-example losses."""

from autosimulate_tf.models.factories import mlp, small_cnn
from autosimulate_tf.models.losses import accuracy, per_example_loss

__all__ = ["mlp", "small_cnn", "accuracy", "per_example_loss"]
