"""A fault-injecting wrapper: make any simulator raise, emit NaN/Inf, mis-shape or hang.

For the library's reliability tests and for users' own smoke tests:

    FaultInjectingSimulator.simulator = @GaussianMixtureSimulator()
    FaultInjectingSimulator.raise_rate = 0.05
    FaultInjectingSimulator.nan_rate = 0.05
    Problem.simulator = @FaultInjectingSimulator()

Whether a sample fails is a deterministic function of its latent values and
`seed`, so a faulty run is exactly reproducible (and restartable).
"""

import hashlib
import time

import gin
import numpy as np

from autosimulate_tf.errors import check
from autosimulate_tf.simulators.base import WrappingSimulator

FAULT_KINDS = ("raise", "nan", "inf", "wrong_shape", "hang")


class InjectedRenderError(RuntimeError):
    """The error a `FaultInjectingSimulator` raises on purpose."""


@gin.configurable
class FaultInjectingSimulator(WrappingSimulator):
    """Wraps a simulator; shares its psi and latent distribution, corrupts some renders."""

    def __init__(
        self,
        simulator=gin.REQUIRED,
        raise_rate: float = 0.0,
        nan_rate: float = 0.0,
        inf_rate: float = 0.0,
        wrong_shape_rate: float = 0.0,
        hang_rate: float = 0.0,
        hang_s: float = 5.0,
        seed: int = 0,
        name: str = "fault_injecting",
    ):
        """Wraps `simulator`, corrupting each render with the given probabilities.

        Args:
          simulator: the simulator to wrap.
          raise_rate: probability a render raises `InjectedRenderError`.
          nan_rate: probability the observation is all NaN.
          inf_rate: probability the observation contains +Inf.
          wrong_shape_rate: probability the observation has an extra row.
          hang_rate: probability the render sleeps `hang_s` seconds first (a hang,
            caught by the pipeline's `render_timeout_s`).
          hang_s: length of a hang (>= 0).
          seed: salt of the deterministic per-latent fault decision.
          name: module name.

        Raises:
          ConfigError: for a rate outside [0, 1], rates summing to more than 1 or a bad `hang_s`.
        """
        rates = {
            "raise": raise_rate,
            "nan": nan_rate,
            "inf": inf_rate,
            "wrong_shape": wrong_shape_rate,
            "hang": hang_rate,
        }
        for kind, rate in rates.items():
            check(0.0 <= rate <= 1.0, f"FaultInjectingSimulator.{kind}_rate={rate} must be in [0, 1].")
        check(
            sum(rates.values()) <= 1.0,
            f"FaultInjectingSimulator rates ({', '.join(f'{kind}_rate' for kind in rates)}) sum to "
            f"{sum(rates.values())}; they must sum to at most 1.",
        )
        check(
            bool(np.isfinite(hang_s) and hang_s >= 0),
            f"FaultInjectingSimulator.hang_s={hang_s} must be a finite number >= 0.",
        )
        super().__init__(simulator, name=name)
        self.rates = rates
        self.hang_s = float(hang_s)
        self.seed = int(seed)

    def fault_for(self, latent) -> str | None:
        """The fault this latent triggers (deterministic), or None."""
        digest = hashlib.sha256(str(self.seed).encode())
        for key in sorted(latent) if isinstance(latent, dict) else [None]:
            value = latent[key] if key is not None else latent
            digest.update(np.ascontiguousarray(np.asarray(value)).tobytes())
        uniform = int.from_bytes(digest.digest()[:8], "little") / 2.0**64
        threshold = 0.0
        for kind in FAULT_KINDS:
            threshold += self.rates[kind]
            if uniform < threshold:
                return kind
        return None

    def render(self, latent):
        """The wrapped render, corrupted for the latents `fault_for` selects."""
        fault = self.fault_for(latent)
        if fault == "raise":
            raise InjectedRenderError("injected render failure")
        if fault == "hang":
            time.sleep(self.hang_s)
        observation, label = self.wrapped.render(latent)
        observation = np.array(observation, dtype=self.observation_dtype)
        label = np.asarray(label, dtype=self.label_dtype)
        if fault == "nan":
            observation[...] = np.nan
        elif fault == "inf":
            observation.flat[0] = np.inf
        elif fault == "wrong_shape":
            observation = np.concatenate([observation, observation[:1]], axis=0)
        return observation, label
