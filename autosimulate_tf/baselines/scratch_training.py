"""One objective evaluation for search baselines: train a fresh model on M samples, score it.

Learning to Simulate, random search and the untuned default all score a simulator
setting the same way: render `num_samples` examples at the current psi, train a
task model *from scratch* (new initial weights, new optimizer state) for
`num_steps` minibatch steps, and measure it on the real validation set (and on
the held-out test set, for reporting only).

The model and its compiled training step are reused across evaluations, with
weights re-initialised and optimizer slots zeroed, so no method pays for
`tf.function` retracing that a better implementation would avoid.
"""

import time

import gin
import keras
import numpy as np
import tensorflow as tf

from autosimulate_tf import tracing
from autosimulate_tf.data import pipeline
from autosimulate_tf.hypergrad.objective import TaskObjective
from autosimulate_tf.models import losses
from autosimulate_tf.models.initial_weights import InitialWeights


@gin.configurable
class ScratchTrainingEvaluator:
    """Scores the simulator's current psi by training a model from scratch."""

    def __init__(
        self,
        simulator,
        real_data,
        model_fn,
        num_outputs: int,
        loss: str,
        num_samples: int = 1000,
        num_steps: int = 300,
        batch_size: int = 64,
        learning_rate: float = 0.01,
        weight_decay: float = 1e-4,
        fine_tune: bool = False,
    ):
        """Args:
        simulator: the `Simulator` (its psi is set by the caller before `evaluate`).
        real_data: `RealData`.
        model_fn: factory `(input_shape, num_outputs, seed) -> keras.Model`.
        num_outputs: model outputs (classes).
        loss: task loss name.
        num_samples: M, samples rendered per evaluation.
        num_steps: Adam steps per evaluation.
        batch_size: minibatch size.
        learning_rate: Adam learning rate.
        weight_decay: L2 coefficient (as in AutoSimulate's inner loss).
        fine_tune: start from the weights left by `keep_weights` instead of a fresh
          initialisation (Learning to Simulate's fine-tuning option).
        """
        for name, value, low in (
            ("num_samples", num_samples, 2),
            ("num_steps", num_steps, 1),
            ("batch_size", batch_size, 1),
        ):
            if value < low:
                raise ValueError(f"ScratchTrainingEvaluator.{name}={value} must be >= {low}.")
        if learning_rate <= 0:
            raise ValueError(f"ScratchTrainingEvaluator.learning_rate={learning_rate} must be > 0.")
        self.simulator = simulator
        self.real_data = real_data
        self.model_fn = model_fn
        self.num_outputs = num_outputs
        self.loss = loss
        self.num_samples = int(num_samples)
        self.num_steps = int(num_steps)
        self.batch_size = int(batch_size)
        self.weight_decay = float(weight_decay)
        self.fine_tune = bool(fine_tune)
        self.input_shape = tuple(simulator.observation_shape)
        self.model = model_fn(input_shape=self.input_shape, num_outputs=num_outputs, seed=0)
        # Only its weight-decay term is used: the same L2 penalty as AutoSimulate's inner loss.
        self._objective = TaskObjective(self.model, loss, weight_decay)
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self._kept_weights = None
        dtype = self.model.inputs[0].dtype
        self._validation = (tf.constant(real_data.validation_inputs, dtype), tf.constant(real_data.validation_labels))
        self._test = (tf.constant(real_data.test_inputs, dtype), tf.constant(real_data.test_labels))
        # The weights model_fn(seed=...) would start from, without building a model each time.
        self._initial_weights = InitialWeights(self.model, model_fn, self.input_shape, num_outputs)
        self._train_fn = tracing.compile_function(self._train, reduce_retracing=True)
        self._score_fn = tracing.compile_function(self._score, reduce_retracing=True)

    def _reset(self, seed: int) -> None:
        if self.fine_tune and self._kept_weights is not None:
            initial = self._kept_weights
        else:
            initial = self._initial_weights(seed)
        for variable, value in zip(self.model.trainable_variables, initial, strict=True):
            variable.assign(value)
        for variable in self.optimizer.variables:
            if "learning_rate" not in variable.name:
                variable.assign(tf.zeros_like(variable))

    def keep_weights(self) -> None:
        """Remembers the current weights as the starting point for `fine_tune`."""
        self._kept_weights = [v.numpy() for v in self.model.trainable_variables]

    def _train(self, inputs, labels, seed):
        variables = self.model.trainable_variables
        num_examples = tf.shape(inputs)[0]

        def one_step(step):
            indices = pipeline.minibatch_indices(seed, step, self.batch_size, num_examples)
            with tf.GradientTape() as tape:
                outputs = self.model(tf.gather(inputs, indices), training=True)
                loss = tf.reduce_mean(losses.per_example_loss(self.loss, outputs, tf.gather(labels, indices)))
                loss += self._objective.weight_decay_term([v.value for v in variables])
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return (step + 1,)

        # An explicit loop, as in AutoSimulate's inner training, so no AutoGraph is needed (tracing.py).
        tf.while_loop(lambda step: step < self.num_steps, one_step, (tf.constant(0),))

    def _score(self, inputs, labels):
        outputs = self.model(inputs, training=False)
        loss = tf.reduce_mean(losses.per_example_loss(self.loss, outputs, labels))
        return loss, losses.accuracy(self.loss, outputs, labels)

    def evaluate(self, seed: int) -> dict:
        """Renders M samples at the current psi, trains from scratch, scores on real data.

        Args:
          seed: integer seed for the samples, the initial weights and the minibatches.

        Returns:
          Dict with `val_accuracy`, `val_loss`, `test_accuracy`, `samples`,
          `dropped_samples`, `steps`, `time_s` (render + train + validation score;
          the test score is reporting and is not timed).
        """
        start = time.perf_counter()
        sample_seed = tf.constant([seed, 1], tf.int32)
        latents = self.simulator.sample_latents(self.num_samples, seed=sample_seed)
        rendered = pipeline.render_latents(self.simulator, latents)
        inputs, labels, _, num_dropped = pipeline.keep_valid(rendered, latents)
        render_s = time.perf_counter() - start
        scores = self.train_and_score(inputs, labels, seed)
        # train_and_score's time leaves out the (untimed, reporting-only) test score.
        scores.update(samples=self.num_samples, dropped_samples=num_dropped, time_s=render_s + scores["time_s"])
        return scores

    def train_and_score(self, inputs, labels, seed: int) -> dict:
        """Trains a fresh model (or the kept one, with `fine_tune`) on the given data and scores it.

        Also used to train the real-data reference model on the real validation images.

        Returns:
          Dict with `val_accuracy`, `val_loss`, `test_accuracy`, `test_loss`, `steps`,
          `time_s` (train + validation score).
        """
        start = time.perf_counter()
        self._reset(seed)
        self._train_fn(tf.cast(inputs, self.model.inputs[0].dtype), labels, tf.constant([seed, 2], tf.int32))
        val_loss, val_accuracy = self._score_fn(*self._validation)
        elapsed = time.perf_counter() - start
        test_loss, test_accuracy = self._score_fn(*self._test)
        return {
            "val_accuracy": float(val_accuracy),
            "val_loss": float(val_loss),
            "test_accuracy": float(test_accuracy),
            "test_loss": float(test_loss),
            "steps": self.num_steps,
            "time_s": elapsed,
        }


def reward_from(evaluation: dict, reward: str) -> float:
    """The scalar a search method maximises: `"accuracy"` or `"negative_loss"` on validation."""
    if reward == "accuracy":
        return evaluation["val_accuracy"]
    if reward == "negative_loss":
        return -evaluation["val_loss"]
    raise ValueError(f"reward={reward!r} must be 'accuracy' or 'negative_loss'.")


def evaluation_seed(base_seed: int, index: int) -> int:
    """A distinct integer seed for evaluation `index` of a run seeded `base_seed`."""
    return int(np.random.SeedSequence([base_seed, index]).generate_state(1)[0] % (2**31 - 1))
