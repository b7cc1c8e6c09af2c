"""Gin-configurable factories for Keras task models.

Factories rather than `@gin.configurable` Layer subclasses: decorating a Keras 3
Layer/Model subclass with gin crashes at construction (DESIGN.md section 4).
Every initializer gets a seed derived from `seed`, so a run's initial weights
are reproducible without touching global random state.
"""

from collections.abc import Sequence

import gin
import keras


def _initializer(seed: int, index: int) -> keras.initializers.Initializer:
    return keras.initializers.GlorotUniform(seed=seed * 1000 + index)


def _scaling(input_scale: float, dtype: str) -> list:
    """A Rescaling layer unless the scale is 1 (an unscaled model has no extra layer, so its weights and outputs do not change)."""
    return [] if input_scale == 1.0 else [keras.layers.Rescaling(input_scale, dtype=dtype)]


@gin.configurable
def mlp(
    input_shape: Sequence[int],
    num_outputs: int,
    hidden_units: Sequence[int] = (16, 16),
    activation: str = "tanh",
    dtype: str = "float32",
    seed: int = 0,
    input_scale: float = 1.0,
) -> keras.Model:
    """A fully connected network mapping inputs to `num_outputs` (logits or values).

    Args:
      input_shape: shape of one input (without the batch dimension); flattened.
      num_outputs: number of outputs (classes for cross-entropy).
      hidden_units: width of each hidden layer.
      activation: Keras activation name for the hidden layers.
      dtype: weight and computation dtype (`"float64"` for numerical tests).
      seed: seed of the weight initializers.
      input_scale: inputs are multiplied by this first (e.g. 1/16 for 0..16 pixel counts).

    Returns:
      An un-compiled `keras.Sequential`.
    """
    layers = [
        keras.Input(tuple(input_shape), dtype=dtype),
        *_scaling(input_scale, dtype),
        keras.layers.Flatten(dtype=dtype),
    ]
    for index, units in enumerate(hidden_units):
        layers.append(
            keras.layers.Dense(units, activation=activation, kernel_initializer=_initializer(seed, index), dtype=dtype)
        )
    layers.append(
        keras.layers.Dense(num_outputs, kernel_initializer=_initializer(seed, len(hidden_units)), dtype=dtype)
    )
    return keras.Sequential(layers, name="mlp")


@gin.configurable
def small_cnn(
    input_shape: Sequence[int],
    num_outputs: int,
    filters: Sequence[int] = (16, 32),
    dense_units: int = 64,
    activation: str = "relu",
    dtype: str = "float32",
    seed: int = 0,
    input_scale: float = 1.0,
) -> keras.Model:
    """A small convolutional network for image inputs (e.g. 8x8 digits).

    Two 3x3 convolutions (the second strided) and a dense layer; no batch
    normalisation, so the model has no state that the functional
    (`stateless_call`) passes used by the hypergradient would have to carry.

    Args:
      input_shape: `(height, width)` or `(height, width, channels)`.
      num_outputs: number of classes.
      filters: channels of the two convolutions.
      dense_units: width of the dense layer before the output.
      activation: Keras activation name.
      dtype: weight and computation dtype.
      seed: seed of the weight initializers.
      input_scale: inputs are multiplied by this first (e.g. 1/16 for 0..16 pixel counts).

    Returns:
      An un-compiled `keras.Sequential`.
    """
    input_shape = tuple(input_shape)
    layers = [keras.Input(input_shape, dtype=dtype), *_scaling(input_scale, dtype)]
    if len(input_shape) == 2:
        layers.append(keras.layers.Reshape((*input_shape, 1), dtype=dtype))
    for index, channels in enumerate(filters):
        layers.append(
            keras.layers.Conv2D(
                channels,
                3,
                strides=1 if index == 0 else 2,
                padding="same",
                activation=activation,
                kernel_initializer=_initializer(seed, index),
                dtype=dtype,
            )
        )
    layers += [
        keras.layers.Flatten(dtype=dtype),
        keras.layers.Dense(dense_units, activation=activation, kernel_initializer=_initializer(seed, 10), dtype=dtype),
        keras.layers.Dense(num_outputs, kernel_initializer=_initializer(seed, 11), dtype=dtype),
    ]
    return keras.Sequential(layers, name="small_cnn")
