"""The task model as a pure function of explicit weight tensors.

Hessian-vector products and forward-mode JVPs need the loss as a function of
weight *tensors*: `tf.autodiff.ForwardAccumulator` rejects Keras 3 variables
(DESIGN.md section 4). `keras.Model.stateless_call` gives exactly that function
without copying the model.
"""

import tensorflow as tf

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.hypergrad import tree_math
from autosimulate_tf.hypergrad.sharding import Sharding
from autosimulate_tf.models import losses


class TaskObjective:
    """Training and validation losses of a Keras model, as functions of its weights theta.

    `L_train(theta) = mean_i l(x_i, y_i; theta) + (weight_decay / 2) |theta|^2`,
    `L_val(theta) = mean_j l(x_j, y_j; theta)` on real validation data, or (classifiers)
    `E_val(theta) = mean_j (1 - p(y_j | x_j; theta))`, the expected validation error.
    """

    def __init__(self, model, loss: str, weight_decay: float = 0.0, sharding: Sharding | None = None):
        """Args:
        model: a built Keras model without state updated in the forward pass.
        loss: task loss name (see `autosimulate_tf.models.losses`).
        weight_decay: coefficient of the L2 term in the training loss.
        sharding: how batches are split over replicas (default: one device).
          The methods below are per device; the hypergradient code combines
          them over shards with `sharding.weighted_mean` / `concatenate`.
        """
        losses.check_loss_name(loss)
        if weight_decay < 0:
            raise ConfigError(f"weight_decay={weight_decay} must be >= 0.")
        self.model = model
        self.loss = loss
        self.weight_decay = float(weight_decay)
        self.sharding = sharding if sharding is not None else Sharding()

    def current_weights(self) -> list[tf.Tensor]:
        """The model's trainable weights theta as tensors (a snapshot, not variables)."""
        return [tf.convert_to_tensor(v.value) for v in self.model.trainable_variables]

    def outputs(self, theta, inputs) -> tf.Tensor:
        """Model outputs at the weights theta."""
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        outputs, _ = self.model.stateless_call(list(theta), non_trainable, inputs)
        return outputs

    def per_example_losses(self, theta, inputs, labels) -> tf.Tensor:
        """`[n]` per-example losses `l(x_i, y_i; theta)` (no weight decay)."""
        return losses.per_example_loss(self.loss, self.outputs(theta, inputs), labels)

    def weight_decay_term(self, theta) -> tf.Tensor:
        """`(weight_decay / 2) |theta|^2`."""
        squared = tf.add_n([tf.reduce_sum(tf.square(w)) for w in theta])
        return 0.5 * tree_math.as_dtype(self.weight_decay, squared.dtype) * squared

    def train_loss(self, theta, inputs, labels, example_weights=None) -> tf.Tensor:
        """Mean generated-data loss plus weight decay.

        `example_weights` (e.g. importance weights `r_i` of reused renders) make it
        `mean_i r_i l(x_i, y_i; theta)` plus weight decay.
        """
        per_example = self.per_example_losses(theta, inputs, labels)
        if example_weights is not None:
            per_example = tf.cast(example_weights, per_example.dtype) * per_example
        return tf.reduce_mean(per_example) + self.weight_decay_term(theta)

    def validation_loss(self, theta, inputs, labels) -> tf.Tensor:
        """Mean loss on real validation data."""
        return tf.reduce_mean(self.per_example_losses(theta, inputs, labels))

    def validation_expected_error(self, theta, inputs, labels) -> tf.Tensor:
        """Mean expected 0-1 error `1 - p(y | x; theta)` on real validation data (classifiers only)."""
        if self.loss != losses.SOFTMAX_CROSS_ENTROPY:
            raise ConfigError(f"The expected validation error needs a classifier; the task loss is {self.loss!r}.")
        return tf.reduce_mean(losses.per_example_expected_error(self.outputs(theta, inputs), labels))

    def value_and_gradient(self, loss_fn, theta, inputs, labels, *per_example) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """`loss_fn(theta, inputs, labels, *per_example)` and its gradient in theta, from one forward pass."""
        theta = list(theta)
        with tf.GradientTape() as theta_tape:
            theta_tape.watch(theta)
            value = loss_fn(theta, inputs, labels, *per_example)
        return value, theta_tape.gradient(value, theta)

    def mean_value_and_gradient(self, loss_fn, theta, inputs, labels, *per_example) -> tuple:
        """`value_and_gradient` over all examples, data-parallel over `self.sharding`'s replicas.

        `per_example` tensors (e.g. importance weights) are sharded with the examples
        and passed to `loss_fn` after the labels.
        """
        return self.sharding.weighted_mean(
            lambda *shard: self.value_and_gradient(loss_fn, theta, *shard), [inputs, labels, *per_example]
        )

    def gradient(self, loss_fn, theta, inputs, labels) -> list[tf.Tensor]:
        """Gradient of `loss_fn(theta, inputs, labels)` in the theta."""
        return self.value_and_gradient(loss_fn, theta, inputs, labels)[1]
