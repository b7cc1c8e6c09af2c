"""`uci_digits_real_data`: the UCI digits split into validation (optimiser) and test (reporting).

Covers the documented split sizes, shapes and dtypes, that validation and test
partition the dataset (as multisets of (image, label) rows: nothing shared, nothing
lost), the UCI value range, stratified class coverage of the validation set,
reproducibility under the fixed seed, and the `num_validation` argument checks.
"""

import collections

import numpy as np
import pytest
from sklearn.datasets import load_digits

from autosimulate_tf.data import RealData
from autosimulate_tf.data.digits import uci_digits_real_data
from autosimulate_tf.errors import ConfigError

NUM_IMAGES = 1797


def rows(images, labels):
    return collections.Counter(image.tobytes() + bytes([label]) for image, label in zip(images, labels, strict=True))


def test_default_split_sizes_shapes_and_dtypes():
    data = uci_digits_real_data()
    assert isinstance(data, RealData)
    assert data.validation_inputs.shape == (300, 8, 8) and data.validation_inputs.dtype == np.float32
    assert data.validation_labels.shape == (300,) and data.validation_labels.dtype == np.int32
    assert data.test_inputs.shape == (NUM_IMAGES - 300, 8, 8) and data.test_inputs.dtype == np.float32
    assert data.test_labels.shape == (NUM_IMAGES - 300,) and data.test_labels.dtype == np.int32


@pytest.mark.parametrize("num_validation", [10, 123, 300])
def test_validation_and_test_partition_the_dataset(num_validation):
    data = uci_digits_real_data(num_validation=num_validation)
    assert len(data.validation_labels) == num_validation
    assert len(data.test_labels) == NUM_IMAGES - num_validation
    digits = load_digits()
    everything = rows(digits.images.astype(np.float32), digits.target)
    validation = rows(data.validation_inputs, data.validation_labels)
    test = rows(data.test_inputs, data.test_labels)
    # UCI holds a few duplicate images, so compare multisets: the two splits add up to the
    # dataset exactly (nothing lost, no index used twice).
    assert validation + test == everything


def test_values_are_uci_block_counts():
    data = uci_digits_real_data()
    for images in (data.validation_inputs, data.test_inputs):
        assert images.min() == 0.0 and images.max() == 16.0
        assert np.all(images == np.round(images))


@pytest.mark.parametrize("num_validation", [10, 300])
def test_validation_covers_every_class_stratified(num_validation):
    data = uci_digits_real_data(num_validation=num_validation)
    counts = np.bincount(data.validation_labels, minlength=10)
    assert counts.min() >= 1
    per_class = num_validation / 10
    assert np.all(np.abs(counts - per_class) <= 1), counts
    assert set(np.unique(data.test_labels)) == set(range(10))


def test_fixed_seed_is_reproducible_and_seeds_differ():
    first, again, other = uci_digits_real_data(), uci_digits_real_data(seed=0), uci_digits_real_data(seed=1)
    for left, right in zip(first, again, strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(first.validation_inputs, other.validation_inputs)


@pytest.mark.parametrize("num_validation", [9, 0, 301, 1797])
def test_num_validation_outside_10_to_300_raises_naming_it(num_validation):
    with pytest.raises(ConfigError, match=f"num_validation={num_validation}"):
        uci_digits_real_data(num_validation=num_validation)
