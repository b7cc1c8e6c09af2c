"""The problem being solved: a simulator, the real data it should match, a task model and a loss.

One `Problem` is built per run and handed to everything that trains a model on the
simulator's data: the AutoSimulate trainer, the fresh-model evaluator (final model, psi
selection, real-data reference), the comparison's referee and every baseline. They all
see the same simulator object (so the same psi), the same real data, the same model
architecture and the same loss.

In gin:

    Problem.simulator = @GaussianMixtureSimulator()
    Problem.real_data = @xor_mixture_real_data()
    Problem.model_fn = @mlp
    Problem.loss = 'softmax_cross_entropy'

From Python: `Problem(simulator=..., real_data=..., model_fn=..., loss=...)`.
"""

import gin
import numpy as np
import tensorflow as tf

from autosimulate_tf.errors import ConfigError, check
from autosimulate_tf.models import losses


@gin.configurable
class Problem:
    """Simulator, real data, task-model factory and loss, checked against each other once."""

    def __init__(
        self,
        simulator=gin.REQUIRED,
        real_data=gin.REQUIRED,
        model_fn=gin.REQUIRED,
        loss: str = losses.SOFTMAX_CROSS_ENTROPY,
    ):
        """Args:
        simulator: a `Simulator` (its variables are psi).
        real_data: a `RealData`: the validation split drives psi, the test split is
          for reporting only.
        model_fn: factory `(input_shape, num_outputs, seed) -> keras.Model`.
        loss: task loss name, `"softmax_cross_entropy"` (classification: the simulator
          sets `num_classes`) or `"squared_error"` (regression: `num_classes = None`).

        Raises:
          ConfigError: unknown loss, a loss that does not fit the simulator's labels, or
            real data whose examples are not shaped like the simulator's renders.
        """
        try:
            losses.check_loss_name(loss)
        except ValueError as error:
            raise ConfigError(f"Problem.{error}") from None
        if loss == losses.SOFTMAX_CROSS_ENTROPY:
            check(
                simulator.num_classes is not None,
                f"Problem.loss={loss!r} needs a classifying simulator, but {type(simulator).__name__}.num_classes "
                "is None (a regression simulator); use Problem.loss = 'squared_error'.",
            )
        self.simulator = simulator
        self.real_data = real_data
        self.model_fn = model_fn
        self.loss = loss
        self._check_real_data_shapes()

    @property
    def is_classification(self) -> bool:
        """True when models are scored by accuracy as well as loss."""
        return self.loss == losses.SOFTMAX_CROSS_ENTROPY

    @property
    def num_outputs(self) -> int:
        """Model outputs: the number of classes, or the size of one regression label."""
        if self.simulator.num_classes:
            return int(self.simulator.num_classes)
        return int(np.prod(self.simulator.label_shape or (1,)))

    @property
    def observation_shape(self) -> tuple:
        """Shape of one rendered (and one real) input."""
        return tuple(self.simulator.observation_shape)

    def build_model(self, seed: int):
        """A new task model from `model_fn`, its input checked against the simulator's renders.

        Raises:
          ConfigError: the model's input shape differs from `observation_shape`.
        """
        model = self.model_fn(input_shape=self.observation_shape, num_outputs=self.num_outputs, seed=seed)
        model_input_shape = tuple(model.inputs[0].shape[1:])
        check(
            model_input_shape == self.observation_shape,
            f"Model input shape {model_input_shape} does not match the simulator's observation_shape "
            f"{self.observation_shape} (check the Problem.model_fn and Problem.simulator bindings).",
        )
        return model

    def real_split(self, split: str, dtype=tf.float32) -> tuple[tf.Tensor, tf.Tensor]:
        """`(inputs, labels)` of the real `"validation"` or `"test"` split as tensors."""
        if split not in ("validation", "test"):
            raise ValueError(f"split={split!r} must be 'validation' or 'test'.")
        inputs = getattr(self.real_data, f"{split}_inputs")
        labels = getattr(self.real_data, f"{split}_labels")
        return tf.constant(inputs, dtype), tf.constant(labels)

    def _check_real_data_shapes(self) -> None:
        for split in ("validation", "test"):
            shape = tuple(np.shape(getattr(self.real_data, f"{split}_inputs"))[1:])
            check(
                shape == self.observation_shape,
                f"Real {split} inputs have shape {shape} per example but the simulator renders "
                f"{self.observation_shape} (check the Problem.real_data and Problem.simulator bindings).",
            )
