"""The one error type for bad settings, raised before any expensive work.

Every check of a gin binding, a constructor argument or an initial value raises
`ConfigError` with a message that names the offending setting (for example
`HypergradientEstimator.damping=-1 must be >= 0.`). The launchers turn it, and gin's own
configuration errors, into exit status 2 with that one message; anything else raised
during a run keeps its traceback.

`ConfigError` subclasses `ValueError`, so code that already catches `ValueError` for
a bad argument keeps working.
"""


class ConfigError(ValueError):
    """A setting is invalid; the message names it and says what is allowed."""


def check(condition: bool, message: str) -> None:
    """Raises `ConfigError(message)` unless `condition` holds."""
    if not condition:
        raise ConfigError(message)
