"""The estimator against the analytic hypergradient of ridge regression.

Inputs come from `x ~ N(psi, s^2 I)`, labels `y = x . beta + noise`, the task model
is linear, so `theta*(psi) = (M + wd I)^-1 M beta` with `M = s^2 I + psi psi^T`, and
`F(psi) = L_val(theta*(psi))` has an analytic gradient (here by autodiff of the
closed form, in float64). The estimator uses the `exact` solver at the
converged (closed-form) inner solution on the generated data.
"""

import gaussian_inputs
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.hypergrad import GeneratedData, HypergradientEstimator, TaskObjective, solvers

tfd = tfp.distributions

INPUT_SCALE = 1.0
LABEL_NOISE = 0.5
WEIGHT_DECAY = 0.5
BETA = np.array([1.5, -1.0])
PSI = np.array([0.5, -1.0])
NUM_SAMPLES = 20_000
SEED = (3, 4)


class GaussianInputsSimulator(gaussian_inputs.GaussianInputsSimulator):
    """x ~ N(psi, s^2 I), noise ~ N(0, sigma^2); renders (x, x . beta + noise)."""

    def __init__(self, psi):
        super().__init__(psi, INPUT_SCALE, LABEL_NOISE, BETA)


def validation_set():
    rng = np.random.default_rng(11)
    inputs = rng.normal([-0.5, 1.0], 1.0, size=(300, 2))
    labels = inputs @ np.array([1.0, -2.0]) + 0.3 * rng.normal(size=300)
    return inputs, labels


def analytic_hypergradient(psi):
    """dF/dpsi of F(psi) = 0.5 mean (X_v theta*(psi) - y_v)^2 by autodiff of the closed form."""
    inputs, labels = validation_set()
    psi = tf.Variable(psi, dtype=tf.float64)
    with tf.GradientTape() as tape:
        second_moment = INPUT_SCALE**2 * tf.eye(2, dtype=tf.float64) + psi[:, None] * psi[None, :]
        theta = tf.linalg.solve(
            second_moment + WEIGHT_DECAY * tf.eye(2, dtype=tf.float64), second_moment @ BETA[:, None]
        )
        loss = 0.5 * tf.reduce_mean(tf.square(inputs @ theta - labels[:, None]))
    return tape.gradient(loss, psi).numpy()


def linear_model():
    return keras.Sequential(
        [keras.Input((2,), dtype="float64"), keras.layers.Dense(1, use_bias=False, dtype="float64")]
    )


def estimate(simulator, model, seed=SEED):
    """Estimator at the exact ridge solution on N generated samples; returns (estimate, standard error)."""
    latents = simulator.sample_latents(NUM_SAMPLES, seed=tf.constant(seed))
    inputs, labels = tf.vectorized_map(simulator.render, latents)
    # Converged inner solution: the ridge closed form on the generated data.
    gram = tf.transpose(inputs) @ inputs / NUM_SAMPLES + WEIGHT_DECAY * tf.eye(2, dtype=tf.float64)
    theta = tf.linalg.solve(gram, tf.transpose(inputs) @ labels[:, None] / NUM_SAMPLES)
    model.trainable_variables[0].assign(theta)
    objective = TaskObjective(model, "squared_error", WEIGHT_DECAY)
    validation_inputs, validation_labels = validation_set()
    estimator = HypergradientEstimator(solver=solvers.exact, curvature="hessian", damping=0.0)
    result = estimator.estimate(
        objective,
        simulator,
        objective.current_weights(),
        GeneratedData(inputs, labels, latents),
        (validation_inputs, validation_labels),
    )
    # Per-sample terms of the estimate -(w_i - b_i) grad log p(c_i) give its standard error.
    weights = result.influence.numpy()
    baselines = (weights.sum() - weights) / (NUM_SAMPLES - 1)
    score = (latents["x"].numpy() - simulator.parameter("mean").numpy()) / INPUT_SCALE**2
    terms = -(weights - baselines)[:, None] * score
    return result.gradients[0].numpy(), terms.std(axis=0, ddof=1) / np.sqrt(NUM_SAMPLES), terms.mean(axis=0)


def test_matches_analytic_hypergradient_within_monte_carlo_error():
    simulator = GaussianInputsSimulator(PSI)
    estimated, standard_error, mean_of_terms = estimate(simulator, linear_model())
    expected = analytic_hypergradient(PSI)
    # The library's gradient is the mean of the per-sample terms (float32 psi).
    np.testing.assert_allclose(estimated, mean_of_terms, rtol=1e-4, atol=1e-6)
    # The gradient is large compared with the Monte Carlo error, so the test has power ...
    assert np.all(np.abs(expected) > 8 * standard_error), (expected, standard_error)
    # ... and the estimate lies within 4 standard errors of the analytic value.
    assert np.all(np.abs(estimated - expected) < 4 * standard_error), (estimated, expected, standard_error)
    # Same sign: a flipped sign convention would put the estimate ~2|expected| away.
    np.testing.assert_array_equal(np.sign(estimated), np.sign(expected))


def test_descending_the_estimate_lowers_the_validation_loss():
    simulator = GaussianInputsSimulator(PSI)
    estimated, _, _ = estimate(simulator, linear_model())
    inputs, labels = validation_set()

    def objective_value(psi):
        second_moment = INPUT_SCALE**2 * np.eye(2) + np.outer(psi, psi)
        theta = np.linalg.solve(second_moment + WEIGHT_DECAY * np.eye(2), second_moment @ BETA)
        return 0.5 * np.mean((inputs @ theta - labels) ** 2)

    step = 0.05 * estimated / np.linalg.norm(estimated)
    assert objective_value(PSI - step) < objective_value(PSI) < objective_value(PSI + step)
