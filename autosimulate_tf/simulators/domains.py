"""Is a constrained psi value inside its bijector's domain? Checked before a variable exists.

A psi component is stored unconstrained, `u = bijector.inverse(x)`, and read back as
`bijector.forward(u)`. TFP bijectors do not validate by default, so a value outside the
domain fails late and obscurely: `Softplus` or `Exp` of a value <= 0, `Sigmoid` outside
(0, 1) or a probability vector with an entry <= 0 gives a NaN or infinite `u`, on which
every later psi update is skipped as non-finite; a `SoftmaxCentered` vector that does
not sum to 1 is silently renormalised by the round trip; a scalar given to
`SoftmaxCentered` raises a long TensorFlow traceback.

`constrained_value_problem` catches all of these generically: the value must be finite,
`u` must be finite and `forward(u)` must reproduce the value (relative tolerance
`ROUND_TRIP_RTOL` plus absolute `ROUND_TRIP_ATOL`). A probability vector
(`SoftmaxCentered`) is checked first against the simplex itself, for a clearer message:
every entry > 0 and the entries summing to 1 within `SIMPLEX_SUM_TOLERANCE` along the
last axis.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

SIMPLEX_SUM_TOLERANCE = 1e-6
ROUND_TRIP_RTOL = 1e-4
ROUND_TRIP_ATOL = 1e-6
# What each common bijector accepts, for the error message; others get the generic sentence.
_DOMAINS = {
    "Identity": "any finite value",
    "Softplus": "every entry > 0",
    "Exp": "every entry > 0",
    "Sigmoid": "every entry strictly between the Sigmoid's low and high (0 and 1 by default)",
    "Tanh": "every entry strictly between -1 and 1",
}
_BIJECTOR_ERRORS = (tf.errors.OpError, ValueError, TypeError, NotImplementedError)


def show(value: np.ndarray) -> str:
    """`value` as a short one-line string for an error message."""
    if np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number):
        return f"{float(np.asarray(value)):.7g}"
    return np.array2string(np.asarray(value), threshold=12, precision=6, separator=", ").replace("\n", "")


def _simplex_problem(value: np.ndarray) -> str | None:
    allowed = (
        f"a probability vector (SoftmaxCentered) needs every entry > 0 and entries summing to 1 "
        f"within {SIMPLEX_SUM_TOLERANCE:g} along the last axis"
    )
    if value.ndim == 0:
        return f"{allowed}, but it is a scalar"
    if np.any(value <= 0):
        return f"{allowed}, but entries {show(value[value <= 0])} are <= 0"
    sums = value.astype(np.float64).sum(axis=-1)
    if np.any(np.abs(sums - 1.0) > SIMPLEX_SUM_TOLERANCE):
        return f"{allowed}, but they sum to {show(sums)} (divide by the sum to use unnormalised weights)"
    return None


def constrained_value_problem(value, bijector) -> str | None:
    """Why `value` is not a valid constrained value for `bijector`, or None when it is.

    Args:
      value: the constrained value, anything `np.asarray(value, np.float32)` accepts.
      bijector: the TFP bijector mapping unconstrained to constrained values.

    Returns:
      None for a valid value; else one sentence saying what is allowed and what is wrong,
      for the caller to prefix with the setting's name. Never raises for a bad value:
      errors the bijector raises are turned into the sentence.
    """
    try:
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: reported below
            value = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        return f"it must be a number or an array of numbers ({error})"
    if not np.all(np.isfinite(value)):
        return "it is not finite: every entry must be a finite number (in float32)"
    if isinstance(bijector, tfb.SoftmaxCentered):
        problem = _simplex_problem(value)
        if problem is not None:
            return problem
    name = type(bijector).__name__
    allowed = f"the {name} bijector accepts {_DOMAINS.get(name, 'only values its forward map can produce')}"
    try:
        unconstrained = bijector.inverse(tf.constant(value))
        # tf.identity: a TFP bijector caches inverse/forward pairs and would hand back `value` itself.
        reconstructed = bijector.forward(tf.identity(unconstrained)).numpy()
    except _BIJECTOR_ERRORS as error:
        return f"{allowed}, but it raised {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    if not np.all(np.isfinite(unconstrained.numpy())):
        return f"{allowed}, but its unconstrained value inverse(x) = {show(unconstrained.numpy())} is not finite"
    if reconstructed.shape != value.shape or not np.allclose(
        reconstructed, value, rtol=ROUND_TRIP_RTOL, atol=ROUND_TRIP_ATOL
    ):
        return f"{allowed}, but forward(inverse(x)) = {show(reconstructed)} does not reproduce it"
    return None
