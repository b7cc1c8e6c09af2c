"""Fresh-model training: render M samples at the current psi, train a model from scratch, score it.

Everything that judges a psi by a model trained on its data alone uses this: the final
model and the psi selection of a run (train/hand_off.py), the real-data reference, the
comparison's referee, and every search baseline (Learning to Simulate, random search,
Bayesian optimisation, the untuned default). It trains with the same minibatch step as
AutoSimulate's inner training and scores with the same function
(train/task_training.py).

The model and its compiled training step are reused across evaluations, with weights
re-initialised and optimizer slots zeroed, so no method pays for `tf.function`
retracing that a better implementation would avoid.
"""

import time

import gin
import keras
import numpy as np
import tensorflow as tf

from autosimulate_tf import results_schema as schema
from autosimulate_tf import tracing
from autosimulate_tf.data import pipeline
from autosimulate_tf.errors import check
from autosimulate_tf.hypergrad.objective import TaskObjective
from autosimulate_tf.models.initial_weights import InitialWeights
from autosimulate_tf.train import task_training


@gin.configurable
class ScratchTrainingEvaluator:
    """Scores the simulator's current psi by training a model from scratch.

    Bind its budget per use in gin scopes: `final/`, `selection/`, `reference/` (the
    run's hand-off), `referee/` (the comparison) or unscoped (the search baselines).
    """

    def __init__(
        self,
        problem,
        num_samples: int = 1000,
        num_steps: int = 300,
        batch_size: int = 64,
        learning_rate: float = 0.01,
        weight_decay: float = 1e-4,
        fine_tune: bool = False,
    ):
        """Args:
        problem: the `Problem` (its simulator's psi is set by the caller before `evaluate`).
        num_samples: M, samples rendered per evaluation.
        num_steps: Adam steps per evaluation.
        batch_size: minibatch size.
        learning_rate: Adam learning rate.
        weight_decay: L2 coefficient (as in AutoSimulate's inner loss).
        fine_tune: start from the weights left by `keep_weights` instead of a fresh
          initialisation (Learning to Simulate's fine-tuning option).

        Raises:
          ConfigError: naming the bad setting.
        """
        for name, value, low in (
            ("num_samples", num_samples, 2),
            ("num_steps", num_steps, 1),
            ("batch_size", batch_size, 1),
        ):
            check(value >= low, f"ScratchTrainingEvaluator.{name}={value} must be >= {low}.")
        check(learning_rate > 0, f"ScratchTrainingEvaluator.learning_rate={learning_rate} must be > 0.")
        check(weight_decay >= 0, f"ScratchTrainingEvaluator.weight_decay={weight_decay} must be >= 0.")
        self.problem = problem
        self.simulator = problem.simulator
        self.num_samples = int(num_samples)
        self.num_steps = int(num_steps)
        self.batch_size = int(batch_size)
        self.weight_decay = float(weight_decay)
        self.fine_tune = bool(fine_tune)
        self.model = problem.build_model(seed=0)
        self._objective = TaskObjective(self.model, problem.loss, weight_decay)
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self._kept_weights = None
        dtype = self.model.inputs[0].dtype
        self._validation = problem.real_split("validation", dtype)
        self._test = problem.real_split("test", dtype)
        # The weights model_fn(seed=...) would start from, without building a model each time.
        self._initial_weights = InitialWeights(
            self.model, problem.model_fn, problem.observation_shape, problem.num_outputs
        )
        self._train_fn = tracing.compile_function(self._train, reduce_retracing=True)
        self._score_fn = tracing.compile_function(self._score, reduce_retracing=True)

    def _reset(self, seed: int) -> None:
        if self.fine_tune and self._kept_weights is not None:
            initial = self._kept_weights
        else:
            initial = self._initial_weights(seed)
        task_training.restart_from(self.model, self.optimizer, initial)

    def keep_weights(self) -> None:
        """Remembers the current weights as the starting point for `fine_tune`."""
        self._kept_weights = [v.numpy() for v in self.model.trainable_variables]

    def _train(self, inputs, labels, seed):
        task_training.minibatch_steps(
            self._objective, self.optimizer, inputs, labels, self.num_steps, seed, self.batch_size
        )

    def _score(self, inputs, labels):
        return task_training.score(self.model, self.problem.loss, inputs, labels)

    def evaluate(self, seed: int) -> dict:
        """Renders M samples at the current psi, trains from scratch, scores on real data.

        Args:
          seed: integer seed for the samples, the initial weights and the minibatches.

        Returns:
          Dict with the keys `results_schema.FRESH_MODEL_KEYS`: validation and test
          loss and accuracy (None for regression), `simulated_samples`,
          `dropped_samples`, `model_steps`, `wall_clock_s` (render + train +
          validation score; the test score is reporting and is not timed) and
          `render_wall_clock_s` (its sampling and rendering part).
        """
        start = time.perf_counter()
        sample_seed = tf.constant([seed, 1], tf.int32)
        latents = self.simulator.sample_latents(self.num_samples, seed=sample_seed)
        rendered = pipeline.render_latents(self.simulator, latents)
        inputs, labels, _, num_dropped = pipeline.keep_valid(rendered, latents)
        render_s = time.perf_counter() - start
        scores = self.train_and_score(inputs, labels, seed)
        scores[schema.WALL_CLOCK_S] += render_s  # train_and_score's time leaves out the untimed test score
        scores.update({schema.SIMULATED_SAMPLES: self.num_samples, schema.DROPPED_SAMPLES: num_dropped})
        scores[schema.RENDER_WALL_CLOCK_S] = render_s
        return scores

    def train_and_score(self, inputs, labels, seed: int) -> dict:
        """Trains a fresh model (or the kept one, with `fine_tune`) on the given data and scores it.

        Also used to train the real-data reference model on the real validation images.

        Returns:
          Dict with validation and test loss and accuracy (None for regression),
          `model_steps` and `wall_clock_s` (train + validation score).
        """
        start = time.perf_counter()
        self._reset(seed)
        self._train_fn(tf.cast(inputs, self.model.inputs[0].dtype), labels, tf.constant([seed, 2], tf.int32))
        validation = self._score_fn(*self._validation)
        elapsed = time.perf_counter() - start
        test = self._score_fn(*self._test)
        classification = self.problem.is_classification
        return {
            **task_training.as_scores("val", validation, classification),
            **task_training.as_scores("test", test, classification),
            schema.MODEL_STEPS: self.num_steps,
            schema.WALL_CLOCK_S: elapsed,
        }


def evaluation_seed(base_seed: int, *indices: int) -> int:
    """A distinct integer seed for evaluation `indices` (e.g. its index) of a run seeded `base_seed`."""
    return int(np.random.SeedSequence([base_seed, *indices]).generate_state(1)[0] % (2**31 - 1))
