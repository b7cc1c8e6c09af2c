"""Learning to Simulate: REINFORCE over simulator parameters (Ruiz et al., ICLR 2019).

A Gaussian policy `pi_omega` over the unconstrained psi vector (learned mean and
diagonal log-std). Each policy update draws K parameter settings, and for each one
generates a fresh dataset of M samples, trains a task model from scratch (or
fine-tunes) and takes its validation accuracy (or negative loss) as the reward.
The policy follows `grad = mean_k (R_k - b) grad log pi(psi_k)` with `b` an
exponential moving average of past rewards, using Adam.

#### References
[1]: Ruiz, Schulter, Chandraker. Learning to Simulate. ICLR 2019. arXiv:1810.02513.
"""

import time

import gin
import keras
import numpy as np
import tensorflow as tf

from autosimulate_tf.baselines.curve import add_evaluation, best_so_far, curve_point, new_totals
from autosimulate_tf.baselines.scratch_training import evaluation_seed, reward_from


@gin.configurable
class LearningToSimulate:
    """REINFORCE over psi with an EMA reward baseline."""

    def __init__(
        self,
        num_policy_samples: int = 4,
        initial_std: float = 0.5,
        learn_std: bool = True,
        policy_learning_rate: float = 0.1,
        baseline_decay: float = 0.8,
        reward: str = "accuracy",
    ):
        """Args:
        num_policy_samples: K >= 1, parameter settings per policy update.
        initial_std: initial policy standard deviation (unconstrained psi units).
        learn_std: also learn the log-std (otherwise fixed).
        policy_learning_rate: Adam learning rate of the policy.
        baseline_decay: EMA decay of the reward baseline, in [0, 1).
        reward: `"accuracy"` or `"negative_loss"` (validation).
        """
        if num_policy_samples < 1:
            raise ValueError(f"LearningToSimulate.num_policy_samples={num_policy_samples} must be >= 1.")
        if initial_std <= 0:
            raise ValueError(f"LearningToSimulate.initial_std={initial_std} must be > 0.")
        if policy_learning_rate <= 0:
            raise ValueError(f"LearningToSimulate.policy_learning_rate={policy_learning_rate} must be > 0.")
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"LearningToSimulate.baseline_decay={baseline_decay} must be in [0, 1).")
        reward_from({"val_accuracy": 0.0, "val_loss": 0.0}, reward)  # validates the name
        self.num_policy_samples = int(num_policy_samples)
        self.initial_std = float(initial_std)
        self.learn_std = bool(learn_std)
        self.policy_learning_rate = float(policy_learning_rate)
        self.baseline_decay = float(baseline_decay)
        self.reward = reward

    def run(self, simulator, evaluator, seed: int, should_stop) -> list[dict]:
        """Runs policy updates until `should_stop(curve)` is true after an evaluation.

        Args:
          simulator: the `Simulator`; its psi is overwritten by each sample.
          evaluator: a `ScratchTrainingEvaluator` for this simulator.
          seed: run seed.
          should_stop: callable on the curve so far.

        Returns:
          The curve: one point per objective evaluation with cumulative counters and
          the best-so-far validation accuracy (and that model's test accuracy).
        """
        rng = np.random.default_rng(seed)
        mean = tf.Variable(simulator.unconstrained_vector(), name="policy_mean")
        log_std = tf.Variable(np.full(mean.shape, np.log(self.initial_std), np.float32), name="policy_log_std")
        policy_variables = [mean, log_std] if self.learn_std else [mean]
        optimizer = keras.optimizers.Adam(self.policy_learning_rate)
        baseline = None
        curve, best, totals = [], None, new_totals()
        while True:
            start = time.perf_counter()
            noise = rng.standard_normal((self.num_policy_samples, mean.shape[0])).astype(np.float32)
            settings = mean.numpy() + np.exp(log_std.numpy()) * noise
            totals["time_s"] += time.perf_counter() - start
            rewards = []
            for setting in settings:
                simulator.set_unconstrained_vector(setting)
                evaluation = evaluator.evaluate(evaluation_seed(seed, totals["evaluations"]))
                rewards.append(reward_from(evaluation, self.reward))
                add_evaluation(totals, evaluation)
                previous_best, best = best, best_so_far(best, evaluation, simulator)
                if best is not previous_best and evaluator.fine_tune:
                    evaluator.keep_weights()
                simulator.set_unconstrained_vector(mean.numpy())
                policy_std = float(np.exp(log_std.numpy()).mean())
                curve.append(
                    curve_point(totals, best, simulator.constrained_parameters_as_lists(), policy_std=policy_std)
                )
                if should_stop(curve):
                    return curve
            start = time.perf_counter()
            rewards = np.asarray(rewards, np.float32)
            baseline = rewards.mean() if baseline is None else baseline
            advantages = tf.constant(rewards - baseline)
            with tf.GradientTape() as policy_tape:
                log_probs = -0.5 * tf.reduce_sum(
                    tf.square((tf.constant(settings) - mean) / tf.exp(log_std)) + 2.0 * log_std, axis=1
                )
                # Minimising -A log pi ascends the expected reward.
                surrogate = -tf.reduce_mean(advantages * log_probs)
            optimizer.apply_gradients(
                zip(policy_tape.gradient(surrogate, policy_variables), policy_variables, strict=True)
            )
            baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * float(rewards.mean())
            simulator.set_unconstrained_vector(mean.numpy())
            totals["time_s"] += time.perf_counter() - start
