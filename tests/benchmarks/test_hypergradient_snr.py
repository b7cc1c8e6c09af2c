"""The statistics of benchmarks/hypergradient_snr.py against cases with known answers."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def snr(benchmark_module):
    return benchmark_module("hypergradient_snr")


def test_influence_statistics_of_a_gaussian_and_of_a_label_determined_influence(snr):
    rng = np.random.default_rng(0)
    n = 20000
    labels = rng.integers(0, 10, n)
    gaussian = snr.influence_statistics(rng.normal(size=n), labels)
    # Kurtosis of n Gaussian draws: 3 with standard error sqrt(24 / n) ~ 0.035; 5 standard errors.
    assert gaussian["influence_kurtosis"] == pytest.approx(3.0, abs=5 * np.sqrt(24 / n))
    # The 5 largest of 20,000 squared N(0, 1) deviations hold well under 1% of their sum.
    assert gaussian["influence_top5_share"] < 0.01
    # Labels drawn independently explain about (classes - 1) / n of the variance.
    assert gaussian["influence_class_r2"] < 0.005
    determined = snr.influence_statistics(labels.astype(float), labels)
    assert determined["influence_class_r2"] == pytest.approx(1.0)
    one_outlier = np.zeros(n)
    one_outlier[7] = 1.0
    # One sample holds all but O(1/n) of the squared deviations.
    assert snr.influence_statistics(one_outlier, labels)["influence_top5_share"] == pytest.approx(1.0, abs=1e-3)


def test_run_statistics_recover_the_signal_to_noise_of_known_gradients(snr):
    rng = np.random.default_rng(1)
    iterations, skip = 4010, 10
    means = np.array([0.0, 0.5, 2.0])  # per-component |mean| / std = 0, 0.5, 2 (std 1)
    gradients = means + rng.normal(size=(iterations, 3))
    gradients = np.concatenate([gradients, np.zeros((iterations, 1))], axis=1)  # a component nothing moves
    run = {
        "gradients": gradients,
        "influence": [rng.normal(size=64) for _ in range(iterations)],
        "labels": [rng.integers(0, 10, 64) for _ in range(iterations)],
        "within_step_snr": [1.5] * iterations,
    }
    statistics = snr.run_statistics(run, skip)
    # The median over the three moving components is the 0.5 one's; its standard error over
    # 4,000 iterations is about 1 / sqrt(4000) ~ 0.016.
    assert statistics["across_iteration_snr"] == pytest.approx(0.5, abs=0.08)
    # 0.5 and 2 are far beyond two standard errors of the mean; 0 is not (up to a 5% chance).
    assert statistics["significant_fraction"] in (pytest.approx(2 / 3), pytest.approx(1.0))
    assert statistics["within_step_snr"] == 1.5
