"""Keras task models (gin-configurable factories) and per-example losses."""

from autosimulate_tf.models.factories import mlp, small_cnn
from autosimulate_tf.models.losses import accuracy, per_example_loss

__all__ = ["accuracy", "mlp", "per_example_loss", "small_cnn"]
