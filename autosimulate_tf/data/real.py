"""Real (target) datasets: a small validation set for the optimiser, a held-out test set.

The test split is never used for optimisation, only for reporting.
"""

from typing import NamedTuple

import gin
import numpy as np

from autosimulate_tf.errors import check

XOR_MEANS = np.array([[2.0, 2.0], [-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0]], dtype=np.float32)
XOR_CLASSES = np.array([0, 0, 1, 1], dtype=np.int32)


class RealData(NamedTuple):
    """Real validation and test data as numpy arrays."""

    validation_inputs: np.ndarray
    validation_labels: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray


def sample_xor_mixture(num_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Samples the XOR mixture: class 0 at (2,2),(-2,-2), class 1 at (2,-2),(-2,2), unit variance.

    The Bayes-optimal classifier (the coordinate axes) scores
    Phi(2)^2 + (1 - Phi(2))^2 ~= 95.6%.
    """
    components = rng.integers(0, 4, size=num_samples)
    inputs = XOR_MEANS[components] + rng.standard_normal((num_samples, 2)).astype(np.float32)
    return inputs.astype(np.float32), XOR_CLASSES[components]


@gin.configurable
def xor_mixture_real_data(num_validation: int = 500, num_test: int = 4000, seed: int = 2020) -> RealData:
    """The GMM toy's real data: XOR-laid-out Gaussian mixture (DESIGN.md section 5).

    Args:
      num_validation: size of the validation set the optimiser sees.
      num_test: size of the held-out test set.
      seed: numpy seed; fixed so every method sees the same real data.

    Returns:
      A `RealData`.

    Raises:
      ConfigError: when `num_validation` or `num_test` is below 1.
    """
    check(
        num_validation >= 1 and num_test >= 1,
        f"num_validation={num_validation} and num_test={num_test} must be >= 1.",
    )
    rng = np.random.default_rng(seed)
    validation = sample_xor_mixture(num_validation, rng)
    test = sample_xor_mixture(num_test, rng)
    return RealData(validation[0], validation[1], test[0], test[1])
