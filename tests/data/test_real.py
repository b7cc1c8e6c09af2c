"""`xor_mixture_real_data` and `sample_xor_mixture`: the GMM toy's real data.

Covers shapes and dtypes, reproducibility under the fixed seed, that validation and
test share no example, class balance (4 binomial standard errors), that the Bayes
classifier sign(x0 * x1) > 0 -> class 0 scores Phi(2)^2 + (1 - Phi(2))^2 ~= 95.6% on the
4000-example test set (4 binomial standard errors), and the argument checks.
"""

import math

import numpy as np
import pytest

from autosimulate_tf.data import RealData, sample_xor_mixture, xor_mixture_real_data
from autosimulate_tf.data.real import XOR_CLASSES, XOR_MEANS
from autosimulate_tf.errors import ConfigError

PHI_2 = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))
BAYES_ACCURACY = PHI_2**2 + (1.0 - PHI_2) ** 2


def bayes_predictions(inputs):
    return np.where(inputs[:, 0] * inputs[:, 1] > 0, 0, 1)


def assert_fraction_close(observed_fraction, expected_fraction, num_trials):
    standard_error = np.sqrt(expected_fraction * (1.0 - expected_fraction) / num_trials)
    assert abs(observed_fraction - expected_fraction) < 4 * standard_error, (observed_fraction, expected_fraction)


def test_shapes_and_dtypes():
    data = xor_mixture_real_data(num_validation=123, num_test=456)
    assert isinstance(data, RealData)
    assert data.validation_inputs.shape == (123, 2) and data.validation_inputs.dtype == np.float32
    assert data.validation_labels.shape == (123,) and data.validation_labels.dtype == np.int32
    assert data.test_inputs.shape == (456, 2) and data.test_inputs.dtype == np.float32
    assert data.test_labels.shape == (456,) and data.test_labels.dtype == np.int32
    assert set(np.unique(data.test_labels)) == {0, 1}


def test_defaults_match_the_documented_split_sizes():
    data = xor_mixture_real_data()
    assert len(data.validation_labels) == 500
    assert len(data.test_labels) == 4000


def test_fixed_seed_is_reproducible_and_seeds_differ():
    first, again, other = xor_mixture_real_data(), xor_mixture_real_data(seed=2020), xor_mixture_real_data(seed=1)
    for left, right in zip(first, again, strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(first.validation_inputs, other.validation_inputs)


def test_validation_and_test_share_no_example():
    data = xor_mixture_real_data()
    validation_rows = {row.tobytes() for row in data.validation_inputs}
    test_rows = {row.tobytes() for row in data.test_inputs}
    assert len(validation_rows) == 500 and len(test_rows) == 4000
    assert validation_rows.isdisjoint(test_rows)


def test_classes_are_balanced():
    data = xor_mixture_real_data()
    assert_fraction_close(np.mean(data.test_labels == 1), 0.5, 4000)
    assert_fraction_close(np.mean(data.validation_labels == 1), 0.5, 500)


def test_bayes_classifier_scores_about_95_6_percent_on_the_test_set():
    data = xor_mixture_real_data()
    assert BAYES_ACCURACY == pytest.approx(0.9555, abs=1e-4)
    accuracy = np.mean(bayes_predictions(data.test_inputs) == data.test_labels)
    assert_fraction_close(accuracy, BAYES_ACCURACY, 4000)


def test_sample_xor_mixture_components_have_the_documented_means_and_unit_variance():
    num_samples = 40_000
    inputs, labels = sample_xor_mixture(num_samples, np.random.default_rng(0))
    assert_fraction_close(np.mean(labels == 1), 0.5, num_samples)
    # In a component's quadrant with its class: that component (Phi(2)^2) or its same-class mirror ((1 - Phi(2))^2).
    for mean, label in zip(XOR_MEANS, XOR_CLASSES, strict=True):
        members = (labels == label) & (np.sign(inputs) == np.sign(mean)).all(axis=1)
        assert_fraction_close(np.mean(members), 0.25 * BAYES_ACCURACY, num_samples)
        # Truncating N(2, 1) to x > 0 shifts its mean by phi(2) / Phi(2) ~= 0.055.
        np.testing.assert_allclose(np.abs(inputs[members].mean(axis=0)), 2.055, atol=0.03)
    np.testing.assert_allclose(np.var(inputs, axis=0), 5.0, rtol=0.05)  # 2^2 between + 1 within


@pytest.mark.parametrize(("num_validation", "num_test"), [(0, 10), (-5, 10), (10, 0)])
def test_empty_splits_are_rejected(num_validation, num_test):
    with pytest.raises(ConfigError, match=f"num_validation={num_validation} and num_test={num_test} must be >= 1"):
        xor_mixture_real_data(num_validation=num_validation, num_test=num_test)
