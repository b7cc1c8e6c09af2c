"""`Simulator.add_parameter` refuses initial values outside the bijector's domain, with a `ConfigError`.

Without the check each case fails late or silently: probabilities `(1.2, -0.2)` or a scalar given to
`SoftmaxCentered` (NaN psi, or a long TensorFlow traceback), `(0, 1)` (an infinite
unconstrained value, on which every later psi update is skipped), `(0.5, 0.3)` (silently
renormalised), Softplus of a value <= 0, Sigmoid outside (0, 1), and non-finite values.
Every refusal must name the simulator class and the parameter, say what is allowed, and
happen before any variable is created; values inside the domain, even close to its edge,
are accepted unchanged.
"""

import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators import Simulator
from autosimulate_tf.simulators.domains import constrained_value_problem

tfb = tfp.bijectors


class OneParameterSimulator(Simulator):
    """A simulator whose only psi component `weights` is built from the test's value and bijector."""

    def __init__(self, initial_value, bijector=None):
        """Adds the one psi component `weights`."""
        super().__init__(name="one_parameter")
        self.add_parameter("weights", initial_value, bijector=bijector)


@pytest.mark.parametrize(
    ("initial_value", "bijector", "message"),
    [
        ((1.2, -0.2), tfb.SoftmaxCentered(), r"every entry > 0 .* but entries \[-0\.2\] are <= 0"),
        ((0.0, 1.0), tfb.SoftmaxCentered(), r"but entries \[0\.\] are <= 0"),
        ((0.5, 0.3), tfb.SoftmaxCentered(), r"summing to 1 within 1e-06 .* but they sum to 0\.8 "),
        (0.5, tfb.SoftmaxCentered(), "but it is a scalar"),
        (0.0, tfb.Softplus(), r"Softplus bijector accepts every entry > 0, but .* -inf is not finite"),
        ((1.0, -2.0), tfb.Softplus(), r"Softplus bijector accepts every entry > 0, but .* nan\] is not finite"),
        (1.5, tfb.Sigmoid(), "Sigmoid bijector accepts every entry strictly between"),
        (0.0, tfb.Exp(), "Exp bijector accepts every entry > 0"),
        ((0.2, np.nan, 0.8), tfb.SoftmaxCentered(), "not finite"),
        (np.inf, None, "not finite"),
        (1e39, tfb.Softplus(), r"not finite: every entry must be a finite number \(in float32\)"),
        ("wide", None, "must be a number or an array of numbers"),
    ],
)
def test_an_initial_value_outside_the_domain_raises_naming_the_class_and_parameter(initial_value, bijector, message):
    with pytest.raises(ConfigError, match=r"^OneParameterSimulator psi parameter 'weights': initial value ") as raised:
        OneParameterSimulator(initial_value, bijector)
    assert "is not allowed" in str(raised.value)
    assert re.search(message, str(raised.value)), str(raised.value)


def test_no_variable_is_created_before_the_check():
    simulator = OneParameterSimulator(1.0, tfb.Softplus())
    with pytest.raises(ConfigError, match="'extra'"):
        simulator.add_parameter("extra", (0.5, 0.3), bijector=tfb.SoftmaxCentered())
    assert simulator.parameter_names == ["weights"]
    assert len(simulator.variables) == 1


@pytest.mark.parametrize(
    ("initial_value", "bijector"),
    [
        ((0.25, 0.25, 0.5), tfb.SoftmaxCentered()),
        (np.full(7, 1.0 / 7.0, np.float32), tfb.SoftmaxCentered()),
        ((1e-30, 1.0 - 1e-30), tfb.SoftmaxCentered()),
        (np.full((2, 3), 1.0 / 3.0), tfb.SoftmaxCentered()),  # a batch of probability vectors
        (1e-30, tfb.Softplus()),
        (50.0, tfb.Softplus()),
        (0.999, tfb.Sigmoid()),
        (2.5, tfb.Sigmoid(low=1.0, high=3.0)),
        (-3.0, tfb.Shift(2.0)),
        (((1.0, 2.0), (3.0, 4.0)), None),
    ],
)
def test_values_inside_the_domain_are_accepted_unchanged(initial_value, bijector):
    simulator = OneParameterSimulator(initial_value, bijector)
    (variable,) = simulator.psi_variables
    assert np.all(np.isfinite(variable.numpy()))
    expected = np.asarray(initial_value, np.float32)
    np.testing.assert_allclose(simulator.parameter("weights").numpy(), expected, rtol=1e-4, atol=1e-6)


def test_a_simplex_off_by_float32_rounding_is_accepted():
    weights = np.random.default_rng(0).dirichlet(np.ones(128)).astype(np.float32)
    assert constrained_value_problem(weights, tfb.SoftmaxCentered()) is None
    assert constrained_value_problem(weights * (1 + 2e-6), tfb.SoftmaxCentered()) is not None


def test_the_generic_round_trip_catches_a_value_the_bijector_cannot_reach_despite_its_cache():
    # A Chain hides the SoftmaxCentered from the simplex check: only forward(inverse(x)) != x catches the
    # renormalisation, and TFP's inverse/forward cache must not hand x back unchanged.
    bijector = tfb.Chain([tfb.SoftmaxCentered()])
    bijector.inverse(tf.constant([0.5, 0.3]))
    problem = constrained_value_problem([0.5, 0.3], bijector)
    assert problem is not None and "forward(inverse(x)) = [0.625, 0.375] does not reproduce it" in problem, problem
    with pytest.raises(ConfigError, match=r"'weights'.*does not reproduce it"):
        OneParameterSimulator((0.5, 0.3), bijector)
