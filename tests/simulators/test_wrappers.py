"""Constructor checks of the wrapping simulators: a bad setting is a `ConfigError` naming it."""

import pytest

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators import FaultInjectingSimulator, GaussianMixtureSimulator, SlowRenderSimulator


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"raise_rate": -0.1}, r"FaultInjectingSimulator\.raise_rate=-0\.1 must be in \[0, 1\]"),
        ({"nan_rate": 1.5}, r"FaultInjectingSimulator\.nan_rate=1\.5 must be in \[0, 1\]"),
        ({"hang_rate": float("nan")}, r"FaultInjectingSimulator\.hang_rate=nan must be in \[0, 1\]"),
        ({"raise_rate": 0.6, "inf_rate": 0.6}, r"rates \(raise_rate, .*\) sum to 1\.2; they must sum to at most 1"),
        ({"hang_s": -1.0}, r"FaultInjectingSimulator\.hang_s=-1\.0 must be a finite number >= 0"),
    ],
)
def test_fault_injecting_simulator_rejects_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FaultInjectingSimulator(simulator=GaussianMixtureSimulator(), **kwargs)


@pytest.mark.parametrize("work_ms", [-1.0, float("inf"), float("nan")])
def test_slow_render_simulator_rejects_bad_work(work_ms):
    with pytest.raises(ConfigError, match=r"SlowRenderSimulator\.work_ms=.* must be a finite number >= 0"):
        SlowRenderSimulator(simulator=GaussianMixtureSimulator(), work_ms=work_ms)
