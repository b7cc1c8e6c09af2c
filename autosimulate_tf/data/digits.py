"""The real data of the procedural-digits benchmark: the handwritten UCI digits (DESIGN.md section 5).

`sklearn.datasets.load_digits()` ships with scikit-learn (no download): 1797 images
of 8x8 values 0..16, made from 32x32 binary bitmaps by counting set pixels in 4x4
blocks, from 43 writers (UCI "optdigits", test part). They are split once, by a
fixed seed, into a small validation set that the optimiser sees and a disjoint test
set used only for reporting.
"""

import gin
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from autosimulate_tf.data.real import RealData
from autosimulate_tf.errors import check

MAX_VALIDATION = 300  # the optimiser may see at most this many real images
MIN_VALIDATION = 10  # one image per class, so that the stratified split covers every class


@gin.configurable
def uci_digits_real_data(num_validation: int = 300, seed: int = 0) -> RealData:
    """The UCI digits, split into validation (for the optimiser) and test (reporting only).

    The split is stratified by class and fixed by `seed` (default 0: the documented
    benchmark split, validation 300 and test 1497 images). Within each split the
    images keep their order in `load_digits()`.

    Args:
      num_validation: size of the validation set, in `[10, 300]`.
      seed: seed of the stratified split.

    Returns:
      A `RealData` with float32 images `[n, 8, 8]` (values 0..16) and int32 labels `[n]`.

    Raises:
      ConfigError: when `num_validation` is outside `[10, 300]`.
    """
    check(
        MIN_VALIDATION <= num_validation <= MAX_VALIDATION,
        f"num_validation={num_validation} must be in [{MIN_VALIDATION}, {MAX_VALIDATION}]: at least one image "
        f"per class, and at most {MAX_VALIDATION} real images for the optimiser.",
    )
    digits = load_digits()
    images = digits.images.astype(np.float32)
    labels = digits.target.astype(np.int32)
    validation_index, test_index = train_test_split(
        np.arange(len(labels)), train_size=num_validation, stratify=labels, random_state=seed
    )
    validation_index, test_index = np.sort(validation_index), np.sort(test_index)
    return RealData(images[validation_index], labels[validation_index], images[test_index], labels[test_index])
