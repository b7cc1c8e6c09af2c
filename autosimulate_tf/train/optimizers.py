"""Optimizers: Keras's registered with gin, their checks, and one for psi beyond Keras's own.

`DecayingEpsilonAdam` is Adam whose epsilon shrinks geometrically with the step count. With few
samples per outer iteration the hypergradient estimate is noisy; a large epsilon (e.g. 0.03 in
`gin/compare_gmm.gin`) makes small, noise-dominated estimates take small steps, but it also
slows psi where the true gradient is small (a flat stretch of the validation loss). Letting
epsilon fall as the run goes on trades the two. On the GMM toy it shortened the slowest seeds
but did not move the median samples-to-target (`benchmarks/RESULTS.md` section 1).
"""

import gin
import keras
import numpy as np
import tensorflow as tf

from autosimulate_tf.errors import check

# Keras optimizers, configurable in gin scopes, e.g. `inner/keras.optimizers.Adam.learning_rate`.
# (`gin.tf` cannot be imported on TF >= 2.16, so we register them ourselves.)
for _optimizer in (keras.optimizers.Adam, keras.optimizers.SGD, keras.optimizers.RMSprop):
    gin.external_configurable(_optimizer, module="keras.optimizers")
# Learning-rate schedules, e.g. `outer/keras.optimizers.Adam.learning_rate = @keras.optimizers.schedules.CosineDecay()`.
for _schedule in (keras.optimizers.schedules.CosineDecay, keras.optimizers.schedules.ExponentialDecay):
    gin.external_configurable(_schedule, module="keras.optimizers.schedules")


def check_learning_rate(optimizer, scope: str) -> None:
    """Raises `ConfigError` unless the optimizer's (initial) learning rate is a positive number."""
    learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    check(
        learning_rate > 0 and np.isfinite(learning_rate),
        f"{scope}/ optimizer learning_rate={learning_rate} must be a positive number.",
    )


@gin.configurable(module="autosimulate_tf")
class DecayingEpsilonAdam(keras.optimizers.Adam):
    """Adam with `epsilon_t = max(final_epsilon, epsilon * decay ** t)`, t = steps taken so far.

    Bind like Keras's Adam, in the `outer/` scope:

        AutoSimulateTrainer.outer_optimizer = @outer/autosimulate_tf.DecayingEpsilonAdam
        outer/autosimulate_tf.DecayingEpsilonAdam.epsilon = 0.03
        outer/autosimulate_tf.DecayingEpsilonAdam.decay = 0.99
        outer/autosimulate_tf.DecayingEpsilonAdam.final_epsilon = 0.01

    The step count is the optimizer's `iterations` variable, which checkpoints hold, so a
    resumed run continues the schedule where it stopped.
    """

    def __init__(
        self, learning_rate=0.001, epsilon: float = 1e-7, decay: float = 1.0, final_epsilon: float = 0.0, **kwargs
    ):
        """Args:
        learning_rate: as Keras's Adam.
        epsilon: epsilon at step 0.
        decay: factor per step, in (0, 1]; 1 keeps epsilon constant (plain Adam).
        final_epsilon: floor, >= 0.
        **kwargs: passed to `keras.optimizers.Adam` (beta_1, beta_2, ...).
        """
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"DecayingEpsilonAdam.decay={decay} must be in (0, 1].")
        if not final_epsilon >= 0.0:
            raise ValueError(f"DecayingEpsilonAdam.final_epsilon={final_epsilon} must be >= 0.")
        super().__init__(learning_rate=learning_rate, epsilon=epsilon, **kwargs)
        self.decay = float(decay)
        self.final_epsilon = float(final_epsilon)

    # Keras's Adam reads `self.epsilon` inside its update step, so a property is all it takes.
    @property
    def epsilon(self):
        """The epsilon of the next step (a tensor)."""
        steps = tf.cast(self.iterations, tf.float32)
        return tf.maximum(self.final_epsilon, self.initial_epsilon * tf.pow(self.decay, steps))

    @epsilon.setter
    def epsilon(self, value):
        # Adam's constructor assigns `self.epsilon`; keep that as the step-0 value. Written to
        # __dict__ directly so Keras's attribute tracking does not see a float as state.
        self.__dict__["initial_epsilon"] = float(value)

    def get_config(self):
        """Keras config: Adam's, with the step-0 epsilon, the decay and the floor."""
        config = super().get_config()
        config.update(epsilon=self.initial_epsilon, decay=self.decay, final_epsilon=self.final_epsilon)
        return config
