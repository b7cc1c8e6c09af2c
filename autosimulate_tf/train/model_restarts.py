"""Periodic restarts of the warm-started task model (`AutoSimulateTrainer.reinitialize_every`).

AutoSimulate's hypergradient is taken at a model warm-started since the first outer
iteration. What lowers that model's validation objective one step ahead can differ from
what a model trained from scratch on the new psi's data gains (short-horizon bias; on
MNIST the warm-started model rewarded thicker strokes, which cost fresh models accuracy,
benchmarks/RESULTS.md section 5). Every K outer iterations theta restarts from fresh
initial weights, seeded by `(seed, iteration)` so a resumed run restarts identically, and
the inner optimizer's state and the solver warm start are zeroed.
"""

import tensorflow as tf

from autosimulate_tf.models.initial_weights import InitialWeights
from autosimulate_tf.train import task_training
from autosimulate_tf.train.scratch_training import evaluation_seed


class ModelRestarts:
    """When theta restarts, and the restart itself."""

    def __init__(self, every: int, seed: int, model, problem):
        """Args:
        every: K >= 0; restarts at outer iterations K, 2K, ... (0: never).
        seed: the experiment seed.
        model: the built task model whose initializers are re-drawn.
        problem: the run's `Problem` (its `model_fn`, for models whose initializers cannot be reused).
        """
        self.every = int(every)
        self.seed = int(seed)
        self._initial_weights = None
        if self.every:
            self._initial_weights = InitialWeights(
                model, problem.model_fn, problem.observation_shape, problem.num_outputs
            )

    def due(self, iteration: int) -> bool:
        """Whether theta restarts at this (0-based) outer iteration."""
        return self.every > 0 and iteration > 0 and iteration % self.every == 0

    def seed_at(self, iteration: int) -> int:
        """The integer seed of the fresh initial weights at a restart, derived from `(seed, iteration)`."""
        # A stream of its own (the 3), apart from the stateless render and minibatch seeds.
        return evaluation_seed(self.seed, 3, iteration)

    def restart(self, iteration: int, model, optimizer, previous_z) -> None:
        """Fresh initial weights for `model`, zeroed `optimizer` state and solver warm start `previous_z`."""
        task_training.restart_from(model, optimizer, self._initial_weights(self.seed_at(iteration)))
        # The previous z solved a system at the old theta; at the new one it is no better a start than 0.
        for variable in previous_z:
            variable.assign(tf.zeros_like(variable))
