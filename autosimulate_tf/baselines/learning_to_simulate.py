"""Learning to Simulate: REINFORCE over simulator parameters (Ruiz et al., ICLR 2019).

A Gaussian policy `pi_omega(psi) = N(psi; mu, diag(sigma^2))` over the unconstrained psi
vector, `omega = (mu, log sigma)`. Each policy update draws K settings `psi_k ~ pi_omega`,
and for each one generates a fresh dataset of M samples, trains a task model from scratch
(or fine-tunes) and takes a reward `R_k` from its validation score: the accuracy, or the
negative validation loss (the default for a regression problem, which has no accuracy).
The policy follows the REINFORCE estimate of the gradient of the expected reward,

    grad_omega J ~= mean_k (R_k - b) grad_omega log pi_omega(psi_k),
    grad_mu log pi          = (psi_k - mu) / sigma^2,
    grad_{log sigma} log pi = (psi_k - mu)^2 / sigma^2 - 1,

with `b` an exponential moving average of past mean rewards (initialised to the first
batch's mean reward), by Adam on the surrogate loss `-mean_k (R_k - b) log pi_omega(psi_k)`
(`policy_gradients`, `advantages_and_baseline`).

#### References
[1]: Ruiz, Schulter, Chandraker. Learning to Simulate. ICLR 2019. arXiv:1810.02513.
"""

import math
import time

import gin
import keras
import numpy as np
import tensorflow as tf

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines.curve import add_evaluation, best_so_far, curve_point, new_totals
from autosimulate_tf.baselines.score import Score
from autosimulate_tf.errors import check
from autosimulate_tf.train.scratch_training import evaluation_seed

ACCURACY_REWARD = "accuracy"
NEGATIVE_LOSS_REWARD = "negative_loss"
REWARDS = (ACCURACY_REWARD, NEGATIVE_LOSS_REWARD)


def gaussian_log_density(settings, mean, log_std):
    """`log N(settings_k; mean, diag(exp(log_std))^2)` for every row `k` of `settings` `[K, d]`."""
    standardized = (settings - mean) / tf.exp(log_std)
    dimension = tf.cast(tf.shape(settings)[-1], settings.dtype)
    return -0.5 * tf.reduce_sum(tf.square(standardized) + 2.0 * log_std, axis=-1) - 0.5 * dimension * math.log(
        2.0 * math.pi
    )


def policy_gradients(mean, log_std, settings, advantages) -> tuple[tf.Tensor, tf.Tensor]:
    """Gradients of the REINFORCE surrogate `-mean_k A_k log pi(settings_k)` in `(mean, log_std)`.

    Minimising the surrogate ascends the expected reward: its gradient is minus the
    estimate `mean_k A_k grad log pi(settings_k)` (module docstring).

    Args:
      mean: `[d]` policy mean (tensor or variable).
      log_std: `[d]` policy log standard deviation.
      settings: `[K, d]` the settings the policy drew.
      advantages: `[K]` rewards minus the baseline.

    Returns:
      `(gradient in mean, gradient in log_std)`, each `[d]`, in the dtype of `mean`.
    """
    mean, log_std = tf.convert_to_tensor(mean), tf.convert_to_tensor(log_std)
    settings = tf.convert_to_tensor(settings, mean.dtype)
    advantages = tf.convert_to_tensor(advantages, mean.dtype)
    with tf.GradientTape() as policy_tape:
        policy_tape.watch([mean, log_std])
        surrogate = -tf.reduce_mean(advantages * gaussian_log_density(settings, mean, log_std))
    gradient_mean, gradient_log_std = policy_tape.gradient(surrogate, [mean, log_std])
    return gradient_mean, gradient_log_std


def advantages_and_baseline(rewards, baseline: float | None, decay: float) -> tuple[np.ndarray, float]:
    """A batch's advantages `R_k - b` and the EMA baseline after the batch.

    Args:
      rewards: `[K]` rewards of one batch.
      baseline: the baseline before the batch; None before the first one, which is then
        taken against its own mean reward (centred advantages).
      decay: EMA decay in [0, 1).

    Returns:
      `(advantages [K] in the dtype of rewards, decay b + (1 - decay) mean(rewards))`.
    """
    rewards = np.asarray(rewards)
    mean_reward = float(np.mean(rewards))
    if baseline is None:
        baseline = mean_reward
    return rewards - baseline, decay * baseline + (1.0 - decay) * mean_reward


def reward_from(evaluation: dict, reward: str) -> float:
    """The scalar the policy maximises: validation accuracy, or the negative validation loss."""
    if reward == ACCURACY_REWARD:
        return evaluation[schema.VAL_ACCURACY]
    return -evaluation[schema.VAL_LOSS]


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
        reward: str | None = None,
    ):
        """Args:
        num_policy_samples: K >= 1, parameter settings per policy update.
        initial_std: initial policy standard deviation (unconstrained psi units).
        learn_std: also learn the log-std (otherwise fixed).
        policy_learning_rate: Adam learning rate of the policy.
        baseline_decay: EMA decay of the reward baseline, in [0, 1).
        reward: `"accuracy"` or `"negative_loss"` (validation); None: accuracy for a
          classification problem, negative loss for a regression one.

        Raises:
          ConfigError: naming the bad setting.
        """
        check(num_policy_samples >= 1, f"LearningToSimulate.num_policy_samples={num_policy_samples} must be >= 1.")
        check(initial_std > 0, f"LearningToSimulate.initial_std={initial_std} must be > 0.")
        check(policy_learning_rate > 0, f"LearningToSimulate.policy_learning_rate={policy_learning_rate} must be > 0.")
        check(0 <= baseline_decay < 1, f"LearningToSimulate.baseline_decay={baseline_decay} must be in [0, 1).")
        check(reward is None or reward in REWARDS, f"LearningToSimulate.reward={reward!r} must be one of {REWARDS}.")
        self.num_policy_samples = int(num_policy_samples)
        self.initial_std = float(initial_std)
        self.learn_std = bool(learn_std)
        self.policy_learning_rate = float(policy_learning_rate)
        self.baseline_decay = float(baseline_decay)
        self.reward = reward

    def reward_for(self, problem) -> str:
        """The reward used on `problem`: the bound one, or the default for its kind.

        Raises:
          ConfigError: `reward='accuracy'` on a regression problem.
        """
        if self.reward is None:
            return ACCURACY_REWARD if problem.is_classification else NEGATIVE_LOSS_REWARD
        check(
            self.reward != ACCURACY_REWARD or problem.is_classification,
            f"LearningToSimulate.reward='accuracy' needs a classification problem, but Problem.loss="
            f"{problem.loss!r} has no accuracy; use 'negative_loss' (or leave it unbound).",
        )
        return self.reward

    def check(self, problem) -> None:
        """Raises `ConfigError` when the reward does not fit the problem."""
        self.reward_for(problem)

    def run(self, problem, evaluator, seed: int, should_stop) -> list[dict]:
        """Runs policy updates until `should_stop(curve)` is true after an evaluation.

        Args:
          problem: the `Problem`; its simulator's psi is overwritten by each sample.
          evaluator: scores the simulator's current psi (`ScratchTrainingEvaluator`); with
            `evaluator.fine_tune`, each evaluation starts from the weights of the best one
            so far (`evaluator.keep_weights()`).
          seed: run seed.
          should_stop: callable on the curve so far.

        Returns:
          The curve: one point per objective evaluation with cumulative costs, the
          best-so-far validation and test scores, the policy mean's psi and `policy_std`.
        """
        reward = self.reward_for(problem)
        policy = _Policy(problem.simulator.unconstrained_vector(), self.initial_std, self.policy_learning_rate)
        rng = np.random.default_rng(seed)
        state = _RunState(problem, evaluator, seed, Score.for_problem(problem))
        baseline = None
        while True:
            start = time.perf_counter()
            settings = policy.draw(rng, self.num_policy_samples)
            state.totals[schema.WALL_CLOCK_S] += time.perf_counter() - start
            rewards = []
            for setting in settings:
                evaluation = state.evaluate(setting, policy)
                rewards.append(reward_from(evaluation, reward))
                if should_stop(state.curve):
                    return state.curve
            start = time.perf_counter()
            rewards = np.asarray(rewards, np.float32)
            advantages, baseline = advantages_and_baseline(rewards, baseline, self.baseline_decay)
            policy.update(settings, advantages, self.learn_std)
            problem.simulator.set_unconstrained_vector(policy.mean.numpy())
            state.totals[schema.WALL_CLOCK_S] += time.perf_counter() - start


class _Policy:
    """The Gaussian policy's variables and its Adam optimizer."""

    def __init__(self, initial_mean: np.ndarray, initial_std: float, learning_rate: float):
        self.mean = tf.Variable(initial_mean, dtype=tf.float32, name="policy_mean")
        self.log_std = tf.Variable(
            np.full(self.mean.shape, np.log(initial_std)), dtype=tf.float32, name="policy_log_std"
        )
        self.optimizer = keras.optimizers.Adam(learning_rate)

    def draw(self, rng: np.random.Generator, num_settings: int) -> np.ndarray:
        """`[num_settings, d]` settings `mean + std * noise`."""
        noise = rng.standard_normal((num_settings, self.mean.shape[0])).astype(np.float32)
        return self.mean.numpy() + np.exp(self.log_std.numpy()) * noise

    @property
    def mean_std(self) -> float:
        """The mean policy standard deviation (reported on the curve)."""
        return float(np.exp(self.log_std.numpy()).mean())

    def update(self, settings: np.ndarray, advantages: np.ndarray, learn_std: bool) -> None:
        """One Adam step on the REINFORCE surrogate (the log-std only when `learn_std`)."""
        gradient_mean, gradient_log_std = policy_gradients(self.mean, self.log_std, settings, advantages)
        if learn_std:
            self.optimizer.apply_gradients([(gradient_mean, self.mean), (gradient_log_std, self.log_std)])
        else:
            self.optimizer.apply_gradients([(gradient_mean, self.mean)])


class _RunState:
    """The curve, costs and best evaluation of one run; scores one policy sample at a time."""

    def __init__(self, problem, evaluator, seed: int, score: Score):
        self.simulator, self.evaluator, self.seed, self.score = problem.simulator, evaluator, seed, score
        self.curve, self.best, self.totals = [], None, new_totals()

    def evaluate(self, setting: np.ndarray, policy: _Policy) -> dict:
        """Scores `setting`, records a curve point at the policy mean's psi; returns the evaluation."""
        self.simulator.set_unconstrained_vector(setting)
        evaluation = self.evaluator.evaluate(evaluation_seed(self.seed, len(self.curve)))
        add_evaluation(self.totals, evaluation)
        previous_best = self.best
        self.best = best_so_far(self.best, evaluation, self.simulator, self.score)
        if self.best is not previous_best and self.evaluator.fine_tune:
            self.evaluator.keep_weights()
        # The curve reports the psi this method would hand on: the policy mean.
        self.simulator.set_unconstrained_vector(policy.mean.numpy())
        self.curve.append(
            curve_point(
                self.totals, self.best, self.simulator.constrained_parameters_as_lists(), policy_std=policy.mean_std
            )
        )
        return evaluation
