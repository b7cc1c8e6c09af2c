"""Task-model factories (`mlp`, `small_cnn`) and the per-example losses in `models.losses`.

Factories: output shapes for vector and image inputs, initial weights that depend on the
seed and only on it, float64 models, and `small_cnn` accepting `(8, 8)` and `(8, 8, 1)`.
Losses: `per_example_loss` against numpy formulas, `output_hessian_vector_product`
against `(diag(p) - p p^T) u` and against autodiff, `accuracy`, and the `ValueError`
for an unknown loss name.
"""

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.models import factories, losses

FACTORIES = {"mlp": factories.mlp, "small_cnn": factories.small_cnn}


def weights_of(model):
    return [np.asarray(v.numpy()) for v in model.trainable_variables]


def inputs_for(input_shape, batch=5, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *input_shape)).astype(dtype)


@pytest.mark.parametrize(
    ("factory", "input_shape"), [("mlp", (2,)), ("mlp", (8, 8)), ("small_cnn", (8, 8)), ("small_cnn", (8, 8, 1))]
)
def test_output_shape(factory, input_shape):
    model = FACTORIES[factory](input_shape=input_shape, num_outputs=3)
    assert tuple(model.inputs[0].shape[1:]) == input_shape
    outputs = model(inputs_for(input_shape))
    assert tuple(outputs.shape) == (5, 3)
    assert np.all(np.isfinite(np.asarray(outputs)))


def test_mlp_layer_widths_follow_hidden_units():
    model = factories.mlp(input_shape=(8, 8), num_outputs=4, hidden_units=(7, 5))
    kernels = [tuple(v.shape) for v in model.trainable_variables if len(v.shape) == 2]
    assert kernels == [(64, 7), (7, 5), (5, 4)]


def test_small_cnn_treats_8x8_and_8x8x1_alike():
    flat = factories.small_cnn(input_shape=(8, 8), num_outputs=10, seed=3)
    channel = factories.small_cnn(input_shape=(8, 8, 1), num_outputs=10, seed=3)
    for left, right in zip(weights_of(flat), weights_of(channel), strict=True):
        np.testing.assert_array_equal(left, right)
    images = inputs_for((8, 8))
    np.testing.assert_allclose(np.asarray(flat(images)), np.asarray(channel(images[..., None])), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("factory", "input_shape"), [("mlp", (2,)), ("small_cnn", (8, 8))])
def test_same_seed_gives_identical_initial_weights_and_different_seeds_differ(factory, input_shape):
    build = FACTORIES[factory]
    first = weights_of(build(input_shape=input_shape, num_outputs=2, seed=4))
    again = weights_of(build(input_shape=input_shape, num_outputs=2, seed=4))
    other = weights_of(build(input_shape=input_shape, num_outputs=2, seed=5))
    for left, right in zip(first, again, strict=True):
        np.testing.assert_array_equal(left, right)
    kernels = [index for index, w in enumerate(first) if w.ndim >= 2]
    assert len(kernels) >= 3
    for index in kernels:
        assert not np.array_equal(first[index], other[index]), index
    # Layers within one model must not share an initialisation either.
    assert not np.array_equal(first[kernels[1]].ravel()[:4], first[kernels[2]].ravel()[:4])


@pytest.mark.parametrize(("factory", "input_shape"), [("mlp", (2,)), ("small_cnn", (8, 8))])
def test_float64_models_compute_and_differentiate_in_float64(factory, input_shape):
    model = FACTORIES[factory](input_shape=input_shape, num_outputs=2, dtype="float64")
    assert model.inputs[0].dtype == "float64"
    assert all(v.dtype == "float64" for v in model.trainable_variables)
    with tf.GradientTape() as tape:
        outputs = model(inputs_for(input_shape, dtype=np.float64))
        total = tf.reduce_sum(tf.square(outputs))
    assert outputs.dtype == tf.float64
    gradients = tape.gradient(total, model.trainable_variables)
    assert all(g.dtype == tf.float64 and np.all(np.isfinite(g.numpy())) for g in gradients)


def test_float64_mlp_matches_a_float64_numpy_forward_pass():
    model = factories.mlp(input_shape=(8, 8), num_outputs=3, hidden_units=(6, 5), dtype="float64", seed=2)
    images = inputs_for((8, 8), dtype=np.float64)
    kernel_1, bias_1, kernel_2, bias_2, kernel_3, bias_3 = weights_of(model)
    hidden = np.tanh(images.reshape(5, 64) @ kernel_1 + bias_1)
    hidden = np.tanh(hidden @ kernel_2 + bias_2)
    # float32 arithmetic would leave errors around 1e-7; float64 agrees to ~1e-15.
    np.testing.assert_allclose(np.asarray(model(images)), hidden @ kernel_3 + bias_3, rtol=1e-12, atol=1e-13)


def test_softmax_cross_entropy_per_example_matches_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 4)) * 3
    labels = np.array([0, 3, 1, 2, 2, 0])
    loss = losses.per_example_loss("softmax_cross_entropy", tf.constant(logits), tf.constant(labels))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert loss.shape == (6,)
    np.testing.assert_allclose(loss.numpy(), -log_softmax[np.arange(6), labels], rtol=1e-10)
    # Labels shaped [n, 1] are accepted as well.
    reshaped = losses.per_example_loss("softmax_cross_entropy", tf.constant(logits), tf.constant(labels[:, None]))
    np.testing.assert_allclose(reshaped.numpy(), loss.numpy())


def test_expected_error_is_one_minus_the_true_class_probability():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 4)) * 3
    labels = np.array([0, 3, 1, 2, 2, 0])
    error = losses.per_example_expected_error(tf.constant(logits), tf.constant(labels[:, None]))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert error.shape == (6,)
    np.testing.assert_allclose(error.numpy(), 1.0 - probabilities[np.arange(6), labels], rtol=1e-10)
    # Its gradient in the logits is p_y (p - e_y): zero for confidently right and confidently wrong examples.
    logits_tensor = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits_tensor)
        total = tf.reduce_sum(losses.per_example_expected_error(logits_tensor, tf.constant(labels)))
    p_y = probabilities[np.arange(6), labels][:, None]
    np.testing.assert_allclose(
        tape.gradient(total, logits_tensor).numpy(), p_y * (probabilities - np.eye(4)[labels]), rtol=1e-9, atol=1e-12
    )
    confident = tf.constant([[30.0, 0.0], [0.0, 30.0]], tf.float64)
    np.testing.assert_allclose(
        losses.per_example_expected_error(confident, tf.constant([0, 0])).numpy(), [0.0, 1.0], atol=1e-12
    )


def test_squared_error_per_example_matches_numpy():
    rng = np.random.default_rng(2)
    outputs, targets = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    loss = losses.per_example_loss("squared_error", tf.constant(outputs), tf.constant(targets))
    np.testing.assert_allclose(loss.numpy(), 0.5 * np.sum((outputs - targets) ** 2, axis=1), rtol=1e-12)
    # A single output with labels shaped [n].
    single = losses.per_example_loss("squared_error", tf.constant(outputs[:, :1]), tf.constant(targets[:, 0]))
    np.testing.assert_allclose(single.numpy(), 0.5 * (outputs[:, 0] - targets[:, 0]) ** 2, rtol=1e-12)


def test_softmax_hessian_vector_product_is_diag_p_minus_ppt_times_u():
    rng = np.random.default_rng(3)
    logits, vectors = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    product = losses.output_hessian_vector_product("softmax_cross_entropy", tf.constant(logits), tf.constant(vectors))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.stack([(np.diag(p) - np.outer(p, p)) @ u for p, u in zip(probabilities, vectors, strict=True)])
    np.testing.assert_allclose(product.numpy(), expected, rtol=1e-10, atol=1e-12)

    # And it really is the Hessian of the loss in the logits (autodiff, any label).
    logits_tensor = tf.constant(logits)
    with tf.GradientTape() as outer:
        outer.watch(logits_tensor)
        with tf.GradientTape() as inner:
            inner.watch(logits_tensor)
            loss = tf.reduce_sum(
                losses.per_example_loss("softmax_cross_entropy", logits_tensor, tf.constant([0, 1, 2, 3]))
            )
        gradient = inner.gradient(loss, logits_tensor)
    autodiff = outer.gradient(gradient, logits_tensor, output_gradients=tf.constant(vectors))
    np.testing.assert_allclose(product.numpy(), autodiff.numpy(), rtol=1e-10, atol=1e-12)


def test_squared_error_hessian_vector_product_is_the_identity():
    vectors = tf.constant(np.random.default_rng(4).normal(size=(3, 2)))
    product = losses.output_hessian_vector_product("squared_error", tf.zeros([3, 2], tf.float64), vectors)
    np.testing.assert_array_equal(product.numpy(), vectors.numpy())


def test_accuracy_is_the_fraction_of_correct_argmax_predictions():
    logits = tf.constant([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    assert float(losses.accuracy("softmax_cross_entropy", logits, tf.constant([0, 1, 1, 0]))) == pytest.approx(0.5)
    assert float(losses.accuracy("softmax_cross_entropy", logits, tf.constant([0, 1, 0, 1]))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="classification"):
        losses.accuracy("squared_error", logits, tf.constant([0, 1, 0, 1]))


@pytest.mark.parametrize(
    "call",
    [
        lambda name: losses.per_example_loss(name, tf.zeros([2, 2]), tf.constant([0, 1])),
        lambda name: losses.output_hessian_vector_product(name, tf.zeros([2, 2]), tf.zeros([2, 2])),
        losses.check_loss_name,
    ],
    ids=["per_example_loss", "output_hessian_vector_product", "check_loss_name"],
)
def test_unknown_loss_name_raises_naming_it(call):
    with pytest.raises(ValueError, match="loss='hinge' is not a known task loss"):
        call("hinge")
