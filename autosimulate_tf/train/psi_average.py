"""Tail averaging of the psi iterates (Polyak-Ruppert) for the psi a run hands on.

The outer objective is noisy (a warm-started model, N samples per iteration), so
with a constant psi learning rate the iterates keep fluctuating around a good
region instead of settling in it, and the last iterate is a single noisy draw of
that fluctuation. Their mean over the second part of the run has lower variance:
the classical remedy for constant-step stochastic gradient methods (Polyak and
Juditsky, SIAM J. Control Optim. 30(4), 1992).

Averaging is done on the constrained values recorded in `psi_trajectory.jsonl`,
so a restarted run averages exactly what an uninterrupted one would. Constrained
spaces used by simulators (boxes, the probability simplex, real lines) are convex,
so the mean is a valid psi.
"""

import math

import numpy as np

from autosimulate_tf.errors import ConfigError


def tail_average(entries: list[dict], fraction: float) -> tuple[dict[str, np.ndarray], int, int]:
    """Mean constrained psi over the last `fraction` of the outer iterations.

    Args:
      entries: `PsiTrajectory.entries`: dicts with `iteration` and one value per
        psi component; iteration 0 (the initial psi) is never averaged.
      fraction: in (0, 1]; 0.5 averages the second half of the run.

    Returns:
      `(psi by name, first iteration averaged, last iteration averaged)`.

    Raises:
      ConfigError: for a fraction outside (0, 1].
      ValueError: for a trajectory without outer iterations.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"HandOff.psi_average_fraction={fraction} must be in (0, 1] (or 0: off).")
    iterates = sorted((e for e in entries if e["iteration"] >= 1), key=lambda e: e["iteration"])
    if not iterates:
        raise ValueError("psi averaging needs at least one outer iteration in the psi trajectory.")
    tail = iterates[-max(1, math.ceil(fraction * len(iterates))) :]
    names = [key for key in tail[0] if key != "iteration"]
    mean = {name: np.mean([np.asarray(e[name], np.float64) for e in tail], axis=0).astype(np.float32) for name in names}
    return mean, tail[0]["iteration"], tail[-1]["iteration"]
