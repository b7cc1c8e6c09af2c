"""`InitialWeights`: the weights `model_fn(seed=s)` starts from, without building a model."""

import keras
import numpy as np
import pytest

from autosimulate_tf.models import mlp, small_cnn
from autosimulate_tf.models.initial_weights import InitialWeights


@pytest.mark.parametrize(
    "model_fn, input_shape",
    [(mlp, (2,)), (lambda **kw: mlp(hidden_units=(8, 8, 8), **kw), (3,)), (small_cnn, (8, 8, 1))],
)
def test_reproduces_the_factory_bit_for_bit(model_fn, input_shape):
    template = model_fn(input_shape=input_shape, num_outputs=3, seed=0)
    initial_weights = InitialWeights(template, model_fn, input_shape, 3)
    assert not initial_weights.rebuilds_model
    for seed in (0, 1, 7, 123):
        expected = [v.numpy() for v in model_fn(input_shape=input_shape, num_outputs=3, seed=seed).trainable_variables]
        drawn = initial_weights(seed)
        assert len(drawn) == len(expected)
        for value, reference in zip(drawn, expected, strict=True):
            np.testing.assert_array_equal(np.asarray(value), reference)


def test_different_seeds_give_different_weights():
    template = mlp(input_shape=(2,), num_outputs=2, seed=0)
    initial_weights = InitialWeights(template, mlp, (2,), 2)
    first, second = initial_weights(1), initial_weights(2)
    assert not np.array_equal(np.asarray(first[0]), np.asarray(second[0]))


def unseeded_model(input_shape, num_outputs, seed):
    """A model_fn that ignores its seed: its initializers cannot be re-drawn deterministically."""
    del seed
    return keras.Sequential(
        [keras.Input(tuple(input_shape)), keras.layers.Dense(num_outputs, kernel_initializer="glorot_uniform")]
    )


class ScaledDense(keras.layers.Layer):
    """A custom layer with a weight of its own and no `<name>_initializer` attribute."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(int(input_shape[-1]),), initializer="ones", name="scale")

    def call(self, inputs):
        return inputs * self.scale


def custom_layer_model(input_shape, num_outputs, seed):
    """A model_fn with a weight that no Keras initializer attribute describes."""
    return keras.Sequential(
        [
            keras.Input(tuple(input_shape)),
            ScaledDense(),
            keras.layers.Dense(num_outputs, kernel_initializer=keras.initializers.GlorotUniform(seed=seed)),
        ]
    )


@pytest.mark.parametrize("model_fn", [unseeded_model, custom_layer_model])
def test_models_it_cannot_trace_fall_back_to_building_a_model(model_fn):
    template = model_fn(input_shape=(2,), num_outputs=2, seed=0)
    initial_weights = InitialWeights(template, model_fn, (2,), 2)
    assert initial_weights.rebuilds_model
    drawn = initial_weights(5)
    assert [np.shape(v) for v in drawn] == [tuple(v.shape) for v in template.trainable_variables]
    if model_fn is custom_layer_model:
        expected = [v.numpy() for v in custom_layer_model((2,), 2, seed=5).trainable_variables]
        for value, reference in zip(drawn, expected, strict=True):
            np.testing.assert_array_equal(value, reference)
