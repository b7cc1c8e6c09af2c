"""A slow, GIL-bound renderer wrapper for render-backend tests and benchmarks.

`SlowRenderSimulator` spends about `work_ms` milliseconds of pure-Python CPU work
(a bytecode loop that holds the GIL; not a sleep, which would release it) before
delegating to the wrapped simulator's render. It stands in for the expensive Python
renderers that motivate the process and Ray backends:

    SlowRenderSimulator.simulator = @GaussianMixtureSimulator()
    SlowRenderSimulator.work_ms = 5.0
    Problem.simulator = @SlowRenderSimulator()
    render_latents.backend = @ProcessPoolBackend()

The amount of work is a fixed iteration count (calibrated once, on the 2-core
development machine, to ~5 ms for `work_ms=5`), never a timed loop, so the output
and the work done are the same on every machine and in every process; only the
wall time differs.
"""

import gin
import numpy as np

from autosimulate_tf.errors import check
from autosimulate_tf.simulators.base import WrappingSimulator

# Iterations of `busy_work` per millisecond, measured on the 2-core development machine
# (~9,200 per ms with CPython 3.11); rounded down so `work_ms` is a slight underestimate.
ITERATIONS_PER_MS = 9000


def busy_work(iterations: int) -> int:
    """`iterations` steps of a linear congruential generator in pure Python; returns its final state.

    Pure bytecode, so it holds the GIL throughout: threads cannot run it in parallel,
    separate processes can.
    """
    state = 0
    for step in range(iterations):
        state = (state * 1103515245 + 12345 + step) & 0x7FFFFFFF
    return state


@gin.configurable
class SlowRenderSimulator(WrappingSimulator):
    """Wraps a simulator; shares its psi and latent distribution, makes each render cost ~`work_ms` of CPU."""

    def __init__(self, simulator=gin.REQUIRED, work_ms: float = 5.0, name: str = "slow_render"):
        """Wraps `simulator`, adding about `work_ms` of GIL-bound work to every render.

        Args:
          simulator: the simulator to wrap. Its `render` is called with one numpy
            latent; a TF-op render (e.g. `GaussianMixtureSimulator`) runs eagerly and
            its outputs are converted to numpy (as in `FaultInjectingSimulator`).
          work_ms: pure-Python CPU work per render, in milliseconds on the reference
            machine (>= 0).
          name: module name.

        Raises:
          ConfigError: when `work_ms` is negative or not finite.
        """
        check(
            bool(np.isfinite(work_ms) and work_ms >= 0),
            f"SlowRenderSimulator.work_ms={work_ms} must be a finite number >= 0.",
        )
        super().__init__(simulator, name=name)
        self.work_ms = float(work_ms)
        self.work_iterations = round(self.work_ms * ITERATIONS_PER_MS)

    def render(self, latent):
        """`work_ms` of GIL-bound work, then the wrapped render as numpy arrays (unaffected by the work)."""
        busy_work(self.work_iterations)
        observation, label = self.wrapped.render(latent)
        return np.asarray(observation, dtype=self.observation_dtype), np.asarray(label, dtype=self.label_dtype)
