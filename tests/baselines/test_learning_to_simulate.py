"""Learning to Simulate: the REINFORCE update against closed forms, its wiring, rewards and fine-tuning."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf
from baseline_fakes import (
    SAMPLES_PER_EVALUATION,
    STEPS_PER_EVALUATION,
    DistanceEvaluator,
    problem_for,
    run_for,
)

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import LearningToSimulate
from autosimulate_tf.baselines.learning_to_simulate import (
    advantages_and_baseline,
    gaussian_log_density,
    policy_gradients,
)
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators.gmm import GaussianMixtureSimulator
from autosimulate_tf.simulators.regression import SineRegressionSimulator

BEST_MEANS = np.array([[-2.0, 2.0], [2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])


def closed_form_policy_gradients(mean, std, settings, advantages):
    """`-mean_k A_k grad log N(s_k; mean, std^2)` in (mean, log std), by hand (module docstring of the baseline)."""
    standardized = (settings - mean) / std
    gradient_mean = -np.mean(advantages[:, None] * standardized / std, axis=0)
    gradient_log_std = -np.mean(advantages[:, None] * (standardized**2 - 1.0), axis=0)
    return gradient_mean, gradient_log_std


def test_log_density_is_the_diagonal_gaussian_in_float64():
    rng = np.random.default_rng(0)
    mean, log_std = rng.normal(size=3), rng.normal(size=3) * 0.3
    settings = rng.normal(size=(5, 3))
    std = np.exp(log_std)
    expected = np.sum(-0.5 * ((settings - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi), axis=1)
    actual = gaussian_log_density(tf.constant(settings), tf.constant(mean), tf.constant(log_std))
    assert actual.dtype == tf.float64
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-13)


def test_policy_gradients_match_the_closed_form_of_the_gaussian_score_in_float64():
    rng = np.random.default_rng(1)
    for dimension, num_settings in ((1, 1), (4, 3), (8, 16)):
        mean, log_std = rng.normal(size=dimension), rng.normal(size=dimension) * 0.5
        settings = mean + np.exp(log_std) * rng.normal(size=(num_settings, dimension))
        advantages = rng.normal(size=num_settings)
        gradient_mean, gradient_log_std = policy_gradients(
            tf.constant(mean), tf.constant(log_std), settings, advantages
        )
        expected_mean, expected_log_std = closed_form_policy_gradients(mean, np.exp(log_std), settings, advantages)
        assert gradient_mean.dtype == tf.float64
        np.testing.assert_allclose(gradient_mean.numpy(), expected_mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gradient_log_std.numpy(), expected_log_std, rtol=1e-12, atol=1e-14)


def test_ema_baseline_centres_the_first_batch_and_then_decays():
    first, second = np.array([0.2, 0.6, 0.4]), np.array([0.9, 0.7, 0.8])
    advantages, baseline = advantages_and_baseline(first, None, decay=0.8)
    np.testing.assert_allclose(advantages, first - 0.4, atol=1e-15)  # centred on its own mean
    assert baseline == pytest.approx(0.4)
    advantages, baseline = advantages_and_baseline(second, baseline, decay=0.8)
    np.testing.assert_allclose(advantages, second - 0.4, atol=1e-15)  # against the baseline from before the batch
    assert baseline == pytest.approx(0.8 * 0.4 + 0.2 * 0.8)
    advantages, _ = advantages_and_baseline(np.float32([1.0, 2.0]), 0.5, decay=0.0)
    assert advantages.dtype == np.float32


def keras_adam_step(variable, gradient, state, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Keras 3's Adam update, in numpy (the reference the policy's steps are checked against)."""
    state["step"] += 1
    state["m"] = state["m"] + (gradient - state["m"]) * (1 - beta_1)
    state["v"] = state["v"] + (gradient**2 - state["v"]) * (1 - beta_2)
    alpha = learning_rate * math.sqrt(1 - beta_2 ** state["step"]) / (1 - beta_1 ** state["step"])
    return variable - alpha * state["m"] / (np.sqrt(state["v"]) + epsilon)


@pytest.mark.parametrize("learn_std", [True, False])
def test_two_policy_updates_follow_reinforce_with_the_ema_baseline_and_adam(learn_std):
    """The recorded settings and rewards of two batches re-derive the policy mean and std the curve reports."""
    num_settings, learning_rate, decay, initial_std = 4, 0.1, 0.8, 0.5
    simulator = GaussianMixtureSimulator()
    problem = problem_for(simulator)
    evaluator = DistanceEvaluator(problem, BEST_MEANS.ravel())
    method = LearningToSimulate(
        num_policy_samples=num_settings,
        initial_std=initial_std,
        learn_std=learn_std,
        policy_learning_rate=learning_rate,
        baseline_decay=decay,
    )
    initial_mean = simulator.unconstrained_vector().astype(np.float64)
    curve = run_for(method, problem, evaluator, 2 * num_settings + 1)

    mean, log_std, baseline = initial_mean, np.full_like(initial_mean, math.log(initial_std)), None
    mean_state = {"step": 0, "m": 0.0, "v": 0.0}
    log_std_state = {"step": 0, "m": 0.0, "v": 0.0}
    for batch in range(2):
        settings = np.array(evaluator.unconstrained[batch * num_settings : (batch + 1) * num_settings], np.float64)
        rewards = [
            e[schema.VAL_ACCURACY] for e in evaluator.evaluations[batch * num_settings : (batch + 1) * num_settings]
        ]
        advantages, baseline = advantages_and_baseline(rewards, baseline, decay)
        gradient_mean, gradient_log_std = closed_form_policy_gradients(mean, np.exp(log_std), settings, advantages)
        mean = keras_adam_step(mean, gradient_mean, mean_state, learning_rate)
        if learn_std:
            log_std = keras_adam_step(log_std, gradient_log_std, log_std_state, learning_rate)
        # The point after each update reports the new policy mean (GMM means are unconstrained as they are).
        point = curve[(batch + 1) * num_settings]
        np.testing.assert_allclose(np.ravel(point["psi"]["means"]), mean, rtol=1e-5, atol=1e-5)
        assert point["policy_std"] == pytest.approx(np.exp(log_std).mean(), rel=1e-5)
    # Before the first update every point reports the initial policy.
    for point in curve[:num_settings]:
        np.testing.assert_allclose(np.ravel(point["psi"]["means"]), initial_mean, rtol=1e-6)
        assert point["policy_std"] == pytest.approx(initial_std)
    # The first batch was drawn around the initial mean with the initial std.
    first = np.array(evaluator.unconstrained[:num_settings])
    assert np.all(np.abs(first - initial_mean) < 6 * initial_std)


def test_curve_accounts_every_evaluation_and_reports_the_best_so_far():
    problem = problem_for(GaussianMixtureSimulator())
    evaluator = DistanceEvaluator(problem, BEST_MEANS.ravel())
    curve = run_for(LearningToSimulate(num_policy_samples=3), problem, evaluator, 7)
    assert len(curve) == 7 and len(evaluator.evaluations) == 7
    assert len(set(evaluator.seeds)) == 7  # a distinct evaluation seed each
    for index, point in enumerate(curve, start=1):
        assert set(schema.CURVE_POINT_KEYS) <= set(point)
        assert point[schema.SIMULATED_SAMPLES] == SAMPLES_PER_EVALUATION * index
        assert point[schema.MODEL_STEPS] == STEPS_PER_EVALUATION * index
        assert point[schema.OBJECTIVE_EVALUATIONS] == index and point[schema.HVP_COUNT] == 0
        assert point[schema.WALL_CLOCK_S] >= 0.001 * index
        best = max(e[schema.VAL_ACCURACY] for e in evaluator.evaluations[:index])
        assert point[schema.VAL_ACCURACY] == best


def test_regression_defaults_to_the_negative_loss_and_refuses_the_accuracy_reward():
    problem = problem_for(SineRegressionSimulator())
    evaluator = DistanceEvaluator(problem, best=[1.5, 0.5])
    curve = run_for(LearningToSimulate(num_policy_samples=2), problem, evaluator, 6)
    losses = [e[schema.VAL_LOSS] for e in evaluator.evaluations]
    assert [point[schema.VAL_LOSS] for point in curve] == [min(losses[: i + 1]) for i in range(6)]
    assert all(point[schema.VAL_ACCURACY] is None and point[schema.TEST_ACCURACY] is None for point in curve)
    assert LearningToSimulate().reward_for(problem) == "negative_loss"
    assert LearningToSimulate(reward="negative_loss").reward_for(problem) == "negative_loss"
    with pytest.raises(ConfigError, match=r"LearningToSimulate\.reward='accuracy' needs a classification problem"):
        LearningToSimulate(reward="accuracy").check(problem)
    assert LearningToSimulate().reward_for(problem_for(GaussianMixtureSimulator())) == "accuracy"


def test_negative_loss_reward_moves_the_policy_towards_lower_loss():
    """With the sign of the reward right, the policy mean moves towards the psi of lowest loss."""
    problem = problem_for(SineRegressionSimulator(initial_input_mean=-1.0))
    evaluator = DistanceEvaluator(problem, best=[1.5, 1.0])
    curve = run_for(LearningToSimulate(num_policy_samples=4, policy_learning_rate=0.1), problem, evaluator, 120)
    assert curve[-1]["psi"]["input_mean"] > 0.0


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        ({"num_policy_samples": 0}, r"LearningToSimulate\.num_policy_samples=0 must be >= 1"),
        ({"initial_std": 0.0}, r"LearningToSimulate\.initial_std=0.0 must be > 0"),
        ({"policy_learning_rate": -1.0}, r"LearningToSimulate\.policy_learning_rate=-1.0 must be > 0"),
        ({"baseline_decay": 1.0}, r"LearningToSimulate\.baseline_decay=1.0 must be in \[0, 1\)"),
        ({"reward": "loss"}, r"LearningToSimulate\.reward='loss' must be one of"),
    ],
)
def test_bad_settings_are_refused_naming_the_binding(setting, match):
    with pytest.raises(ConfigError, match=match):
        LearningToSimulate(**setting)


def test_fine_tune_keeps_the_weights_of_every_new_best_evaluation():
    problem = problem_for(GaussianMixtureSimulator())
    evaluator = DistanceEvaluator(problem, BEST_MEANS.ravel(), fine_tune=True)
    curve = run_for(LearningToSimulate(num_policy_samples=4, initial_std=1.0), problem, evaluator, 12)
    scores = [e[schema.VAL_ACCURACY] for e in evaluator.evaluations]
    improved = [index + 1 for index, score in enumerate(scores) if index == 0 or score > max(scores[:index])]
    assert evaluator.kept_after == improved  # right after each new best, before the next evaluation
    assert len(improved) == len({point[schema.VAL_ACCURACY] for point in curve})

    from_scratch = DistanceEvaluator(problem_for(GaussianMixtureSimulator()), BEST_MEANS.ravel(), fine_tune=False)
    run_for(LearningToSimulate(num_policy_samples=4), from_scratch.problem, from_scratch, 5)
    assert from_scratch.kept_after == []


def test_fine_tune_with_the_fresh_model_evaluator_keeps_weights_of_each_new_best(monkeypatch):
    """The real evaluator with `fine_tune`: LTS asks it to keep the weights exactly when the best improves."""
    from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator

    problem = problem_for(GaussianMixtureSimulator())
    evaluator = ScratchTrainingEvaluator(problem, num_samples=32, num_steps=3, batch_size=16, fine_tune=True)
    kept, keep_weights = [], evaluator.keep_weights

    def counting_keep_weights():
        kept.append(True)
        keep_weights()

    monkeypatch.setattr(evaluator, "keep_weights", counting_keep_weights)
    curve = run_for(LearningToSimulate(num_policy_samples=2), problem, evaluator, 4)
    changes = sum(a[schema.VAL_ACCURACY] != b[schema.VAL_ACCURACY] for a, b in itertools.pairwise(curve))
    assert len(kept) == 1 + changes
    assert all(0.0 <= point[schema.VAL_ACCURACY] <= 1.0 for point in curve)
