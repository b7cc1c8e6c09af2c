"""`DecayingEpsilonAdam`: Adam whose epsilon decays geometrically to a floor."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf import configs
from autosimulate_tf.train import DecayingEpsilonAdam


def _adam_steps(optimizer, gradients):
    variable = tf.Variable([1.0, -2.0])
    optimizer.build([variable])
    for gradient in gradients:
        optimizer.apply_gradients([(tf.constant(gradient, tf.float32), variable)])
    return variable.numpy()


def _reference_adam(gradients, learning_rate, epsilons, beta_1=0.9, beta_2=0.999):
    """Adam as Keras writes it (bias correction folded into the step size), epsilon per step."""
    value = np.array([1.0, -2.0])
    m = np.zeros(2)
    v = np.zeros(2)
    for t, (gradient, epsilon) in enumerate(zip(gradients, epsilons, strict=True), start=1):
        m += (1 - beta_1) * (np.asarray(gradient) - m)
        v += (1 - beta_2) * (np.square(gradient) - v)
        alpha = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        value -= alpha * m / (np.sqrt(v) + epsilon)
    return value


GRADIENTS = [[0.02, -0.01], [0.03, 0.005], [-0.01, 0.02], [0.04, 0.01], [0.0, -0.03]]


def test_each_step_uses_the_decayed_epsilon_down_to_the_floor():
    optimizer = DecayingEpsilonAdam(learning_rate=0.3, epsilon=0.03, decay=0.5, final_epsilon=0.005)
    got = _adam_steps(optimizer, GRADIENTS)
    epsilons = [max(0.005, 0.03 * 0.5**t) for t in range(len(GRADIENTS))]  # 0.03, 0.015, 0.0075, 0.005, 0.005
    np.testing.assert_allclose(got, _reference_adam(GRADIENTS, 0.3, epsilons), rtol=1e-5)
    # With gradients this small the epsilon matters: a constant 0.03 ends elsewhere.
    assert not np.allclose(got, _reference_adam(GRADIENTS, 0.3, [0.03] * len(GRADIENTS)), rtol=1e-3)
    assert float(optimizer.epsilon) == pytest.approx(0.005)


def test_decay_one_is_keras_adam():
    plain = _adam_steps(keras.optimizers.Adam(learning_rate=0.3, epsilon=0.03), GRADIENTS)
    constant = _adam_steps(DecayingEpsilonAdam(learning_rate=0.3, epsilon=0.03, decay=1.0), GRADIENTS)
    np.testing.assert_allclose(constant, plain, rtol=1e-6)


def test_the_schedule_resumes_from_a_checkpoint(tmp_path):
    variable = tf.Variable([1.0, -2.0])
    optimizer = DecayingEpsilonAdam(learning_rate=0.3, epsilon=0.03, decay=0.5)
    optimizer.build([variable])
    for gradient in GRADIENTS[:3]:
        optimizer.apply_gradients([(tf.constant(gradient), variable)])
    path = tf.train.Checkpoint(optimizer=optimizer, variable=variable).save(str(tmp_path / "ckpt"))
    restored_variable = tf.Variable([0.0, 0.0])
    restored = DecayingEpsilonAdam(learning_rate=0.3, epsilon=0.03, decay=0.5)
    restored.build([restored_variable])
    tf.train.Checkpoint(optimizer=restored, variable=restored_variable).restore(path)
    assert float(restored.epsilon) == pytest.approx(0.03 * 0.5**3)


@pytest.mark.parametrize(
    ("binding", "message"),
    [("decay = 0.0", r"DecayingEpsilonAdam\.decay=0\.0"), ("final_epsilon = -1.0", r"final_epsilon=-1\.0")],
)
def test_bad_settings_name_themselves(binding, message):
    gin.clear_config()
    configs.parse_gin(["compare_gmm.gin"], [f"outer/autosimulate_tf.DecayingEpsilonAdam.{binding}"])
    with gin.config_scope("outer"), pytest.raises(ValueError, match=message):
        DecayingEpsilonAdam()
    gin.clear_config()
