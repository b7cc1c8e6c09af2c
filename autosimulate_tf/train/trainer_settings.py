"""The build-time check of `AutoSimulateTrainer`'s plain settings, before anything is built or rendered."""

from autosimulate_tf.errors import check
from autosimulate_tf.train import reuse


def check_settings(settings: dict) -> None:
    """Raises `ConfigError` naming the first bad `AutoSimulateTrainer` setting."""
    for name, low in (("num_samples", 2), ("num_inner_steps", 0), ("num_initial_inner_steps", 0)):
        check(settings[name] >= low, f"AutoSimulateTrainer.{name}={settings[name]} must be >= {low}.")
    for name, low in (("inner_batch_size", 1), ("weight_decay", 0), ("reuse_iterations", 0), ("reinitialize_every", 0)):
        check(settings[name] >= low, f"AutoSimulateTrainer.{name}={settings[name]} must be >= {low}.")
    check(
        settings["reuse_weighting"] in reuse.WEIGHTINGS,
        f"AutoSimulateTrainer.reuse_weighting={settings['reuse_weighting']!r} is not one of {reuse.WEIGHTINGS}.",
    )
    rate = settings["max_failure_rate"]
    check(0.0 < rate <= 1.0, f"AutoSimulateTrainer.max_failure_rate={rate} must be in (0, 1].")
    timeout = settings["render_timeout_s"]
    check(timeout is None or timeout > 0, f"AutoSimulateTrainer.render_timeout_s={timeout} must be > 0 (or None).")
