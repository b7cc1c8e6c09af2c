"""`tracing.compile_function`: traced without AutoGraph, with it only when the code needs it."""

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf import tracing


def plain_arithmetic(x):
    return 2.0 * x + 1.0


def python_if_on_a_tensor(x):
    # Needs AutoGraph: without it, `if` on a symbolic tensor raises OperatorNotAllowedInGraphError.
    if tf.reduce_sum(x) > 0:
        return x
    return -x


def python_loop_over_tf_range(n):
    total = tf.constant(0)
    for i in tf.range(n):
        total += i
    return total


def test_code_without_python_control_flow_is_traced_without_autograph_once():
    function = tracing.compile_function(plain_arithmetic, reduce_retracing=True)
    np.testing.assert_allclose(function(tf.constant([1.0, 2.0])).numpy(), [3.0, 5.0])
    np.testing.assert_allclose(function(tf.constant([0.5, -1.0])).numpy(), [2.0, -1.0])
    assert not function.uses_autograph
    assert function.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "python_function, argument, expected",
    [
        (python_if_on_a_tensor, tf.constant([-1.0, -2.0]), [1.0, 2.0]),
        (python_if_on_a_tensor, tf.constant([1.0, 2.0]), [1.0, 2.0]),
        (python_loop_over_tf_range, tf.constant(5), 10),
    ],
)
def test_code_that_needs_autograph_falls_back_to_it_and_computes_the_same(python_function, argument, expected):
    function = tracing.compile_function(python_function)
    np.testing.assert_allclose(function(argument).numpy(), expected)
    assert function.uses_autograph
    # The fallback is for good: later calls keep using AutoGraph.
    np.testing.assert_allclose(function(argument).numpy(), expected)
    assert tf.function(python_function)(argument).numpy() == pytest.approx(function(argument).numpy())


def test_get_concrete_function_also_falls_back():
    function = tracing.compile_function(python_if_on_a_tensor)
    concrete = function.get_concrete_function(tf.TensorSpec([None], tf.float32))
    np.testing.assert_allclose(concrete(tf.constant([-3.0])).numpy(), [3.0])
    assert function.uses_autograph


def test_other_errors_are_raised_unchanged_without_a_fallback():
    def broken(x):
        raise ValueError("broken simulator")

    function = tracing.compile_function(broken)
    with pytest.raises(ValueError, match="broken simulator"):
        function(tf.constant(1.0))
    assert not function.uses_autograph
