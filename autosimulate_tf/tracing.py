"""Compiling the library's `tf.function`s cheaply.

AutoGraph rewrites every Python function a `tf.function` calls (Keras layers, TFP
distributions, a user's simulator) before tracing it. The library's own compiled
code uses explicit `tf.while_loop`s and needs none of that. Skipping it took the
first outer iteration of the first AutoSimulate run in a process on the GMM toy
from ~7.3 s to ~2.7 s (the conversions are cached, so later runs in the same
process gained little; benchmarks/RESULTS.md). User code may need it, though: a model or
a simulator's `log_prob` with a Python `if` on a tensor. `compile_function` traces
without AutoGraph first and, only if the trace fails the way such code fails
(`OperatorNotAllowedInGraphError`), traces again with it, so nothing a plain
`tf.function` accepts is rejected.
"""

import tensorflow as tf
from absl import logging


class PlainThenAutoGraph:
    """A `tf.function` traced without AutoGraph, falling back to AutoGraph if the code needs it.

    Calls and `get_concrete_function` behave as on a `tf.function`; the fallback is
    decided once, on the first trace that fails, and logged.
    """

    def __init__(self, python_function, **tf_function_kwargs):
        self._name = getattr(python_function, "__name__", type(python_function).__name__)
        self._plain = tf.function(python_function, autograph=False, **tf_function_kwargs)
        self._autograph = tf.function(python_function, autograph=True, **tf_function_kwargs)
        self._active = self._plain

    @property
    def uses_autograph(self) -> bool:
        """Whether the fallback happened (the code needed AutoGraph)."""
        return self._active is self._autograph

    def _run(self, use, *args, **kwargs):
        try:
            return use(self._active)(*args, **kwargs)
        except tf.errors.OperatorNotAllowedInGraphError as error:
            if self.uses_autograph:
                raise
            logging.info("%s needs AutoGraph (%s); tracing it with AutoGraph.", self._name, error)
            self._active = self._autograph
            return use(self._active)(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self._run(lambda function: function, *args, **kwargs)

    def get_concrete_function(self, *args, **kwargs):
        """As `tf.function.get_concrete_function` (traces now, e.g. for a relaxed signature)."""
        return self._run(lambda function: function.get_concrete_function, *args, **kwargs)

    def experimental_get_tracing_count(self) -> int:
        """Traces made so far by the function in use."""
        return self._active.experimental_get_tracing_count()


def compile_function(python_function, **tf_function_kwargs) -> PlainThenAutoGraph:
    """`tf.function(python_function, **kwargs)`, traced without AutoGraph unless it is needed."""
    return PlainThenAutoGraph(python_function, **tf_function_kwargs)
