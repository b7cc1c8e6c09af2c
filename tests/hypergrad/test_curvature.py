"""Curvature-vector products, damped matvecs, influence weights and baselines against explicit matrices.

A tiny float64 MLP (26 weights) is small enough to materialise the full Hessian of
the training loss, the output Jacobian `J` and the per-example loss Hessians, so
`curvature.hessian_vector_product` and `curvature.gauss_newton_vector_product`
are checked against `H v` and `(J^T blockdiag(H_l) J / n + wd I) v` built by hand.
`influence.influence_weights` is checked against per-example backprop and
`influence.baseline_values` against its definition.
"""

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.hypergrad import TaskObjective, curvature, influence, tree_math
from autosimulate_tf.models import mlp

NUM_EXAMPLES = 20
NUM_OUTPUTS = 2
# 0.125 is exact in float32 too, so the comparisons below are not confused by the float32 rounding of
# Python-float coefficients that `test_weight_decay_and_damping_keep_float64_precision` documents.
WEIGHT_DECAY = 0.125
RTOL = 1e-10


def make_problem(loss, hidden_units=(4,), seed=0):
    """A float64 MLP, its objective, a random weight point and random data for `loss`."""
    model = mlp(input_shape=(3,), num_outputs=NUM_OUTPUTS, hidden_units=hidden_units, dtype="float64", seed=seed)
    objective = TaskObjective(model, loss, weight_decay=WEIGHT_DECAY)
    rng = np.random.default_rng(seed)
    # A random point rather than the initialisation, so no weight is special (e.g. zero biases).
    weights = [tf.constant(rng.normal(scale=0.8, size=w.shape), tf.float64) for w in objective.current_weights()]
    inputs = tf.constant(rng.normal(size=(NUM_EXAMPLES, 3)), tf.float64)
    if loss == "softmax_cross_entropy":
        labels = tf.constant(rng.integers(0, NUM_OUTPUTS, size=NUM_EXAMPLES), tf.int32)
    else:
        labels = tf.constant(rng.normal(size=(NUM_EXAMPLES, NUM_OUTPUTS)), tf.float64)
    return objective, weights, inputs, labels


def random_vector(weights, seed):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.normal(size=w.shape), tf.float64) for w in weights]


def explicit_hessian(objective, weights, inputs, labels):
    """`[p, p]` Hessian of `objective.train_loss` in the flattened weights, by nested tapes."""
    flat = tree_math.flatten(weights)
    with tf.GradientTape() as outer:
        outer.watch(flat)
        with tf.GradientTape() as inner:
            inner.watch(flat)
            loss = objective.train_loss(tree_math.unflatten(flat, weights), inputs, labels)
        gradient = inner.gradient(loss, flat)
    return outer.jacobian(gradient, flat).numpy()


def explicit_output_jacobian(objective, weights, inputs):
    """`[n * outputs, p]` Jacobian of the flattened model outputs in the flattened weights."""
    flat = tree_math.flatten(weights)
    with tf.GradientTape() as tape:
        tape.watch(flat)
        outputs = tf.reshape(objective.outputs(tree_math.unflatten(flat, weights), inputs), [-1])
    return tape.jacobian(outputs, flat).numpy()


def explicit_gauss_newton(objective, weights, inputs, weight_decay=WEIGHT_DECAY):
    """`J^T blockdiag(H_l) J / n + wd I` with the per-example output Hessians written out."""
    jacobian = explicit_output_jacobian(objective, weights, inputs)
    logits = objective.outputs(weights, inputs).numpy()
    if objective.loss == "softmax_cross_entropy":
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        blocks = [np.diag(p) - np.outer(p, p) for p in probabilities]
    else:
        blocks = [np.eye(NUM_OUTPUTS)] * NUM_EXAMPLES
    loss_hessian = np.zeros((NUM_EXAMPLES * NUM_OUTPUTS,) * 2)
    for index, block in enumerate(blocks):
        rows = slice(index * NUM_OUTPUTS, (index + 1) * NUM_OUTPUTS)
        loss_hessian[rows, rows] = block
    size = jacobian.shape[1]
    return jacobian.T @ loss_hessian @ jacobian / NUM_EXAMPLES + weight_decay * np.eye(size)


def flat(vector):
    return tree_math.flatten(vector).numpy()


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "squared_error"])
def test_hessian_vector_product_matches_explicit_hessian(loss):
    objective, weights, inputs, labels = make_problem(loss)
    hessian = explicit_hessian(objective, weights, inputs, labels)
    assert hessian.shape == (26, 26)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)
    for seed in (1, 2):
        vector = random_vector(weights, seed)
        product = curvature.hessian_vector_product(objective, weights, inputs, labels, vector)
        assert [tuple(p.shape) for p in product] == [tuple(w.shape) for w in weights]
        np.testing.assert_allclose(flat(product), hessian @ flat(vector), rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "squared_error"])
def test_gauss_newton_vector_product_matches_explicit_matrix(loss):
    objective, weights, inputs, labels = make_problem(loss)
    gauss_newton = explicit_gauss_newton(objective, weights, inputs)
    for seed in (1, 2):
        vector = random_vector(weights, seed)
        product = curvature.gauss_newton_vector_product(objective, weights, inputs, labels, vector)
        assert [tuple(p.shape) for p in product] == [tuple(w.shape) for w in weights]
        np.testing.assert_allclose(flat(product), gauss_newton @ flat(vector), rtol=RTOL, atol=1e-12)
    # Power: for this nonlinear net the Gauss-Newton matrix is not the Hessian, so the
    # comparison above would catch a product that silently computed H v instead.
    hessian = explicit_hessian(objective, weights, inputs, labels)
    assert np.linalg.norm(hessian - gauss_newton) > 1e-2 * np.linalg.norm(gauss_newton)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "squared_error"])
def test_gauss_newton_is_positive_semi_definite(loss):
    objective, weights, inputs, labels = make_problem(loss)
    gauss_newton = explicit_gauss_newton(objective, weights, inputs, weight_decay=0.0)
    # Without weight decay: the curvature term alone must be PSD (both H_l are PSD).
    assert np.linalg.eigvalsh(0.5 * (gauss_newton + gauss_newton.T)).min() >= -1e-10
    # The same holds for the library's matrix, assembled from its products (weight decay shifts by wd).
    size = gauss_newton.shape[0]
    columns = [
        flat(
            curvature.gauss_newton_vector_product(
                objective, weights, inputs, labels, tree_math.unflatten(unit, weights)
            )
        )
        for unit in tf.unstack(tf.eye(size, dtype=tf.float64))
    ]
    library_matrix = np.stack(columns, axis=1)
    assert np.linalg.eigvalsh(0.5 * (library_matrix + library_matrix.T)).min() >= WEIGHT_DECAY - 1e-10


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "squared_error"])
def test_gauss_newton_equals_hessian_for_a_linear_model(loss):
    """With outputs linear in the weights the Gauss-Newton matrix *is* the Hessian."""
    objective, weights, inputs, labels = make_problem(loss, hidden_units=())
    hessian = explicit_hessian(objective, weights, inputs, labels)
    vector = random_vector(weights, 3)
    gauss_newton = curvature.gauss_newton_vector_product(objective, weights, inputs, labels, vector)
    hessian_product = curvature.hessian_vector_product(objective, weights, inputs, labels, vector)
    np.testing.assert_allclose(flat(gauss_newton), hessian @ flat(vector), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(flat(hessian_product), hessian @ flat(vector), rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("name", ["hessian", "gauss_newton"])
def test_make_damped_matvec_adds_damping(name):
    objective, weights, inputs, labels = make_problem("softmax_cross_entropy")
    damping = 0.75
    explicit = (
        explicit_hessian(objective, weights, inputs, labels)
        if name == "hessian"
        else explicit_gauss_newton(objective, weights, inputs)
    )
    product = curvature.hessian_vector_product if name == "hessian" else curvature.gauss_newton_vector_product
    matvec = curvature.make_damped_matvec(objective, weights, inputs, labels, name, damping)
    vector = random_vector(weights, 4)
    damped = flat(matvec(vector))
    undamped = flat(product(objective, weights, inputs, labels, vector))
    np.testing.assert_allclose(damped - undamped, damping * flat(vector), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(damped, (explicit + damping * np.eye(26)) @ flat(vector), rtol=RTOL, atol=1e-12)


def test_make_damped_matvec_rejects_bad_settings():
    objective, weights, inputs, labels = make_problem("softmax_cross_entropy")
    with pytest.raises(ValueError, match="curvature"):
        curvature.make_damped_matvec(objective, weights, inputs, labels, "fisher", 0.1)
    with pytest.raises(ValueError, match="damping"):
        curvature.make_damped_matvec(objective, weights, inputs, labels, "hessian", -0.1)
    # Zero damping is allowed.
    curvature.make_damped_matvec(objective, weights, inputs, labels, "gauss_newton", 0.0)


def float64_objective_with_weight_decay(weight_decay):
    model = mlp(input_shape=(3,), num_outputs=NUM_OUTPUTS, hidden_units=(4,), dtype="float64")
    return TaskObjective(model, "softmax_cross_entropy", weight_decay=weight_decay)


def test_gauss_newton_weight_decay_keeps_float64_precision():
    _, weights, inputs, labels = make_problem("softmax_cross_entropy")
    vector = random_vector(weights, 5)
    with_decay = curvature.gauss_newton_vector_product(
        float64_objective_with_weight_decay(0.1), weights, inputs, labels, vector
    )
    without_decay = curvature.gauss_newton_vector_product(
        float64_objective_with_weight_decay(0.0), weights, inputs, labels, vector
    )
    # G v - J^T H_l J v / n must be 0.1 v; the float32-rounded coefficient is off by 1.5e-8 relative.
    np.testing.assert_allclose(flat(with_decay) - flat(without_decay), 0.1 * flat(vector), rtol=1e-12)


def test_damping_keeps_float64_precision():
    objective = float64_objective_with_weight_decay(0.0)
    _, weights, inputs, labels = make_problem("softmax_cross_entropy")
    vector = random_vector(weights, 5)
    matvec = curvature.make_damped_matvec(objective, weights, inputs, labels, "gauss_newton", 0.1)
    undamped = curvature.gauss_newton_vector_product(objective, weights, inputs, labels, vector)
    np.testing.assert_allclose(flat(matvec(vector)) - flat(undamped), 0.1 * flat(vector), rtol=1e-12)


def test_train_loss_weight_decay_keeps_float64_precision():
    _, weights, _, _ = make_problem("softmax_cross_entropy")
    term = float(float64_objective_with_weight_decay(0.1).weight_decay_term(weights))
    expected = 0.05 * sum(float(np.sum(np.square(w.numpy()))) for w in weights)
    np.testing.assert_allclose(term, expected, rtol=1e-12)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "squared_error"])
def test_influence_weights_match_per_example_backprop(loss):
    objective, weights, inputs, labels = make_problem(loss)
    direction = random_vector(weights, 6)
    influence_weights = influence.influence_weights(objective, weights, inputs, labels, direction).numpy()
    assert influence_weights.shape == (NUM_EXAMPLES,)

    def summed_loss(weights, inputs, labels):
        return tf.reduce_sum(objective.per_example_losses(weights, inputs, labels))

    expected = []
    for index in range(NUM_EXAMPLES):
        gradient = objective.gradient(summed_loss, weights, inputs[index : index + 1], labels[index : index + 1])
        expected.append(float(tree_math.dot(gradient, direction)))
    expected = np.array(expected)
    np.testing.assert_allclose(influence_weights, expected, rtol=RTOL, atol=1e-12)
    # The weights differ between examples (a constant vector, e.g. from the mean loss, would not pass).
    assert np.std(expected) > 1e-2 * np.abs(expected).max()


def test_leave_one_out_baseline_is_the_mean_of_the_others():
    values = np.random.default_rng(7).normal(size=9)
    baselines = influence.baseline_values(tf.constant(values, tf.float64), "leave_one_out").numpy()
    expected = np.array([np.delete(values, index).mean() for index in range(values.size)])
    np.testing.assert_allclose(baselines, expected, rtol=1e-13)
    np.testing.assert_allclose(baselines, (values.sum() - values) / (values.size - 1), rtol=1e-13)


def test_leave_one_out_baseline_does_not_depend_on_its_own_sample():
    values = tf.constant(np.random.default_rng(8).normal(size=5), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(values)
        baselines = influence.baseline_values(values, "leave_one_out")
    jacobian = tape.jacobian(baselines, values).numpy()
    # d b_i / d w_j = 1 / (n - 1) for j != i and exactly 0 for j == i.
    np.testing.assert_array_equal(np.diag(jacobian), np.zeros(5))
    np.testing.assert_allclose(jacobian, 0.25 * (np.ones((5, 5)) - np.eye(5)), rtol=1e-15)


def test_no_baseline_is_zero_and_unknown_baseline_raises():
    values = tf.constant(np.random.default_rng(9).normal(size=4), tf.float64)
    baselines = influence.baseline_values(values, "none")
    assert baselines.dtype == tf.float64
    np.testing.assert_array_equal(baselines.numpy(), np.zeros(4))
    with pytest.raises(ValueError, match="baseline"):
        influence.baseline_values(values, "batch_mean")
