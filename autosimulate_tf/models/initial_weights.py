"""Fresh initial weights for a model that is trained from scratch many times.

The search baselines score every candidate psi with a model trained from new
initial weights. Building a new Keras model for each one (`model_fn(seed=...)`)
cost ~45 ms on the GMM toy's MLP, about a third of a whole evaluation, and none of
it is part of the method. `InitialWeights` draws the same values from the built
model's own initializers instead (~1 ms).

Exactness: the factories in `factories.py` seed the k-th initializer of
`model_fn(seed=s)` with `1000 s + k`, so a template built with seed 0 holds seeds
`k`, and re-seeding each with `1000 s + k` reproduces `model_fn(seed=s)` bit for
bit (tested). For any other `model_fn` the draws come from the same initializers
with the same derived seeds: fresh, deterministic per seed, though not
necessarily equal to what that `model_fn` would build. A model whose weights cannot
all be traced to a seeded Keras initializer (custom layers with their own weights
and sublayers, unseeded initializers) falls back to building a new model.
"""

import keras


def _leaf_layers(layer):
    """Layers with no sublayers, depth first (Sequential, functional and nested models)."""
    children = getattr(layer, "layers", None)
    if not children:
        return [layer]
    return [leaf for child in children for leaf in _leaf_layers(child)]


def _initializer_configs(model):
    """`(initializer class, config)` per trainable variable, or None if one has no usable initializer."""
    by_variable = {}
    for layer in _leaf_layers(model):
        for variable in layer.trainable_weights:
            by_variable[id(variable)] = getattr(layer, f"{variable.name}_initializer", None)
    configs = []
    for variable in model.trainable_variables:
        initializer = by_variable.get(id(variable))
        if not isinstance(initializer, keras.initializers.Initializer):
            return None
        config = initializer.get_config()
        if "seed" in config and not isinstance(config["seed"], int):
            return None  # Unseeded: cannot be re-drawn deterministically.
        configs.append((type(initializer), config))
    return configs


class InitialWeights:
    """`initial_weights(seed)`: the weights `model_fn(seed=seed)` would start from."""

    def __init__(self, template: keras.Model, model_fn, input_shape, num_outputs: int):
        """Args:
        template: a model built by `model_fn(..., seed=0)`; its initializers are reused.
        model_fn: the factory, used when the initializers cannot be reused.
        input_shape: model input shape (for the fallback).
        num_outputs: model outputs (for the fallback).
        """
        self._template = template
        self._model_fn = model_fn
        self._input_shape = tuple(input_shape)
        self._num_outputs = num_outputs
        self._configs = _initializer_configs(template)

    @property
    def rebuilds_model(self) -> bool:
        """Whether each call builds a new model (the initializers could not be reused)."""
        return self._configs is None

    def __call__(self, seed: int) -> list:
        """Initial values of every trainable variable, in `template.trainable_variables` order."""
        if self._configs is None:
            fresh = self._model_fn(input_shape=self._input_shape, num_outputs=self._num_outputs, seed=seed)
            return [variable.numpy() for variable in fresh.trainable_variables]
        values = []
        for (initializer_class, config), variable in zip(
            self._configs, self._template.trainable_variables, strict=True
        ):
            if "seed" in config:
                config = {**config, "seed": 1000 * int(seed) + config["seed"]}
            values.append(initializer_class.from_config(config)(variable.shape, dtype=variable.dtype))
        return values
