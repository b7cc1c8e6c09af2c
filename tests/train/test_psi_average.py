"""Tail averaging of psi: the helper on its own and wired into `train_autosimulate`."""

import json

import gin
import numpy as np
import pytest

from autosimulate_tf import configs
from autosimulate_tf.train import psi_average, train_autosimulate

ENTRIES = [
    {"iteration": 0, "means": [0.0, 0.0], "scale": 9.0},
    {"iteration": 1, "means": [1.0, 2.0], "scale": 1.0},
    {"iteration": 2, "means": [3.0, 4.0], "scale": 2.0},
    {"iteration": 3, "means": [5.0, 6.0], "scale": 3.0},
    {"iteration": 4, "means": [7.0, 8.0], "scale": 4.0},
]


def test_tail_average_means_the_last_fraction_of_outer_iterations():
    mean, first, last = psi_average.tail_average(ENTRIES, 0.5)
    assert (first, last) == (3, 4)
    np.testing.assert_allclose(mean["means"], [6.0, 7.0])
    np.testing.assert_allclose(mean["scale"], 3.5)


def test_tail_average_never_includes_the_initial_psi_and_rounds_up():
    mean, first, last = psi_average.tail_average(ENTRIES, 1.0)
    assert (first, last) == (1, 4)
    np.testing.assert_allclose(mean["scale"], 2.5)  # 9.0 at iteration 0 left out
    _, first, _ = psi_average.tail_average(ENTRIES, 0.3)  # ceil(0.3 * 4) = 2 iterates
    assert first == 3


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_tail_average_rejects_fractions_outside_the_unit_interval(fraction):
    with pytest.raises(ValueError, match="psi_average_fraction"):
        psi_average.tail_average(ENTRIES, fraction)


def test_tail_average_needs_an_outer_iteration():
    with pytest.raises(ValueError, match="at least one outer iteration"):
        psi_average.tail_average(ENTRIES[:1], 0.5)


def test_train_autosimulate_reports_the_averaged_psi_from_the_trajectory(tmp_path):
    gin.clear_config()
    configs.parse_gin(
        ["toy_gmm.gin"],
        [
            "train_autosimulate.num_outer_iterations = 4",
            "HandOff.psi_average_fraction = 0.5",
            "AutoSimulateTrainer.num_initial_inner_steps = 20",
        ],
    )
    results = train_autosimulate(root_dir=str(tmp_path))
    trajectory = [json.loads(line) for line in (tmp_path / "psi_trajectory.jsonl").read_text().splitlines()]
    expected = np.mean([entry["means"] for entry in trajectory if entry["iteration"] in (3, 4)], axis=0)
    assert results["averaged_psi_iterations"] == [3, 4]
    np.testing.assert_allclose(results["averaged_psi"]["means"], expected, rtol=1e-5)
    # The last iterate is still reported as final_psi, and differs from the average.
    np.testing.assert_allclose(results["final_psi"]["means"], trajectory[-1]["means"], rtol=1e-6)
    assert not np.allclose(results["final_psi"]["means"], results["averaged_psi"]["means"])


def test_train_autosimulate_rejects_a_bad_average_fraction_before_training(tmp_path):
    gin.clear_config()
    configs.parse_gin(["toy_gmm.gin"], ["HandOff.psi_average_fraction = 2.0"])
    with pytest.raises(ValueError, match=r"HandOff.psi_average_fraction=2\.0"):
        train_autosimulate(root_dir=str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()
