"""The estimator on the GMM toy against central finite differences of F.

`F_N(psi) = L_val(theta*_N(psi))` with the generated set built from common random
numbers (fixed components `k_i` and noise `e_i`, points `means[k_i] + e_i`) and
`theta*_N` converged by Newton's method with the exact Hessian (float64).

Two checks, for both validation objectives (the loss, and the expected error
`1 - p(y | x)`):
  1. Finite differences of `F_N` equal the implicit-function (pathwise) gradient
     `-1/N sum_i dw_i/dx_i dx_i/dpsi` computed with the library's exact solver and
     influence weights: deterministic, tight tolerance.
  2. The score-function estimate (what AutoSimulate uses: no derivative of the
     renderer) agrees with the finite differences within the Monte Carlo error of
     both (4 standard errors, computed from the per-sample terms).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.hypergrad import (
    GeneratedData,
    HypergradientEstimator,
    TaskObjective,
    curvature,
    solvers,
    tree_math,
)
from autosimulate_tf.models import mlp
from autosimulate_tf.simulators import GaussianMixtureSimulator

NUM_SAMPLES = 24000  # N
MEANS = np.array([[-1.0, 1.5], [1.5, 1.0], [-1.0, -1.0], [1.0, -1.5]])
CLASSES = np.array([0, 0, 1, 1])
WEIGHT_DECAY = 1e-2
STEP = 1e-3  # finite-difference step h


def generated_inputs(means, components, noise):
    return tf.constant(means[components] + noise, tf.float64)


def validation_set():
    rng = np.random.default_rng(5)
    components = rng.integers(0, 4, 400)
    inputs = np.array([[2.0, 2.0], [-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0]])[components] + rng.normal(size=(400, 2))
    return tf.constant(inputs, tf.float64), tf.constant(CLASSES[components])


class NewtonSolver:
    """Converges theta on a fixed generated set: Adam warm-up, then exact Newton steps."""

    def __init__(self, objective):
        self.objective = objective
        self._newton_step = tf.function(self._newton_step_eager)

    def _newton_step_eager(self, weights, inputs, labels):
        gradient = self.objective.gradient(self.objective.train_loss, weights, inputs, labels)
        matvec = curvature.make_damped_matvec(self.objective, weights, inputs, labels, "hessian", 0.0)
        step = solvers.exact(matvec, gradient).solution
        return tree_math.subtract(weights, step), tree_math.norm(gradient)

    def converge(self, weights, inputs, labels, iterations=12):
        for _ in range(iterations):
            weights, _gradient_norm = self._newton_step(weights, inputs, labels)
        final_gradient = self.objective.gradient(self.objective.train_loss, weights, inputs, labels)
        assert float(tree_math.norm(final_gradient)) < 1e-9, float(tree_math.norm(final_gradient))
        return weights


def pretrain(model, objective, inputs, labels, steps=1500):
    """Full-batch Adam to near the minimum, where Newton's method converges fast."""
    optimizer = keras.optimizers.Adam(0.02)
    variables = model.trainable_variables

    @tf.function
    def step():
        gradient = objective.gradient(objective.train_loss, [v.value for v in variables], inputs, labels)
        optimizer.apply_gradients(zip(gradient, variables, strict=True))

    for _ in range(steps):
        step()
    return objective.current_weights()


@pytest.mark.parametrize("validation_objective", ["loss", "expected_error"])
def test_score_function_estimate_matches_finite_differences(validation_objective):
    rng = np.random.default_rng(0)
    components = rng.integers(0, 4, NUM_SAMPLES)
    noise = rng.normal(size=(NUM_SAMPLES, 2))
    labels = tf.constant(CLASSES[components])
    inputs = generated_inputs(MEANS, components, noise)
    validation_inputs, validation_labels = validation_set()

    model = mlp(input_shape=(2,), num_outputs=2, hidden_units=(8,), dtype="float64", seed=1)
    objective = TaskObjective(model, "softmax_cross_entropy", WEIGHT_DECAY)
    newton = NewtonSolver(objective)
    validation_fn = {"loss": objective.validation_loss, "expected_error": objective.validation_expected_error}[
        validation_objective
    ]
    weights = newton.converge(pretrain(model, objective, inputs, labels), inputs, labels)

    def objective_value(means):
        converged = newton.converge(weights, generated_inputs(means, components, noise), labels, iterations=6)
        return float(validation_fn(converged, validation_inputs, validation_labels))

    finite_differences = np.zeros_like(MEANS)
    for index in np.ndindex(*MEANS.shape):
        offset = np.zeros_like(MEANS)
        offset[index] = STEP
        finite_differences[index] = (objective_value(MEANS + offset) - objective_value(MEANS - offset)) / (2 * STEP)

    # The library's hypergradient at the converged theta, exact solver, full Hessian.
    simulator = GaussianMixtureSimulator(initial_means=MEANS, component_classes=CLASSES)
    latents = {"component": tf.constant(components, tf.int32), "point": tf.cast(inputs, tf.float32)}
    estimator = HypergradientEstimator(
        solver=solvers.exact, curvature="hessian", damping=0.0, validation_objective=validation_objective
    )
    result = estimator.estimate(
        objective, simulator, weights, GeneratedData(inputs, labels, latents), (validation_inputs, validation_labels)
    )
    assert not bool(result.diagnostics["negative_curvature"]), "theta* must be a strict local minimum"

    # 1. Pathwise (implicit-function) gradient on the same data: -1/N sum_i dw_i/dx_i, routed to mean k_i.
    # sum_i w_i = d/de sum_i l_i(theta + e z) at e = 0, and w_i depends on x_i only, so
    # d(sum_i w_i)/dx_i = dw_i/dx_i: two nested reverse passes give every dw_i/dx_i.
    epsilon = tf.constant(0.0, tf.float64)
    with tf.GradientTape() as inputs_tape:
        inputs_tape.watch(inputs)
        with tf.GradientTape() as epsilon_tape:
            epsilon_tape.watch(epsilon)
            shifted = tree_math.axpy(epsilon, result.z, weights)
            total_loss = tf.reduce_sum(objective.per_example_losses(shifted, inputs, labels))
        total_influence = epsilon_tape.gradient(total_loss, epsilon)
    np.testing.assert_allclose(float(total_influence), result.influence.numpy().sum(), rtol=1e-8)
    influence_input_gradient = inputs_tape.gradient(total_influence, inputs).numpy()
    pathwise_terms = np.zeros((NUM_SAMPLES, *MEANS.shape))
    pathwise_terms[np.arange(NUM_SAMPLES), components] = -influence_input_gradient
    pathwise = pathwise_terms.mean(axis=0)
    np.testing.assert_allclose(finite_differences, pathwise, rtol=1e-4, atol=1e-4 * np.abs(pathwise).max())

    # 2. Score-function estimate vs finite differences, within Monte Carlo error.
    estimate = result.gradients[0].numpy()
    weights_influence = result.influence.numpy()
    baselines = (weights_influence.sum() - weights_influence) / (NUM_SAMPLES - 1)
    score_terms = np.zeros_like(pathwise_terms)
    score_terms[np.arange(NUM_SAMPLES), components] = -(weights_influence - baselines)[:, None] * noise
    np.testing.assert_allclose(estimate, score_terms.mean(axis=0), rtol=1e-3, atol=1e-5)
    standard_error = (score_terms.std(axis=0, ddof=1) + pathwise_terms.std(axis=0, ddof=1)) / np.sqrt(NUM_SAMPLES)
    assert np.linalg.norm(finite_differences) > 6 * np.linalg.norm(standard_error), (finite_differences, standard_error)
    assert np.all(np.abs(estimate - finite_differences) < 4 * standard_error), (
        estimate,
        finite_differences,
        standard_error,
    )
    clear = np.abs(finite_differences) > 4 * standard_error
    assert clear.sum() >= 4
    np.testing.assert_array_equal(np.sign(estimate[clear]), np.sign(finite_differences[clear]))
