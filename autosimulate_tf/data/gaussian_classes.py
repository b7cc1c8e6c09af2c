"""The real data of the psi-dimension benchmark: two Gaussian classes in `dimension` inputs.

Class `y` in {0, 1} is drawn uniformly and its input is `x ~ N((2y - 1) s / 2, I)`: the
classes sit at `-s/2` and `+s/2`, `s` a hidden per-input separation. The simulator
(`simulators/gaussian_classes.py`) has the same form with `s` as psi, one component per
input, so the hidden separation is psi's optimum and the benchmark has exactly
`dimension` knobs.

The hidden separation is built so that every component matters and the problem is
equally hard at every dimension:
- its norm is fixed (`SEPARATION_NORM`), so the Bayes accuracy `Phi(|s| / 2)` is the same
  ~95% at 2 and at 128 inputs, and a model needs the separation's *direction*;
- half of its components are positive and half negative, each with a magnitude drawn
  from [0.5, 1.5] (before the norm is fixed): every input separates the classes, by a
  different amount, so every component has to be learned;
- it is orthogonal to the untuned default (`uniform_separation`, all components equal),
  so a model trained on the default renders learns a boundary that splits the real
  classes at chance (~50%) at every dimension.

Nothing is downloaded: the separation and both splits are deterministic in `seed`.
"""

import math

import gin
import numpy as np

from autosimulate_tf.data.real import RealData
from autosimulate_tf.errors import check

# |s| = 3.3: Bayes accuracy Phi(1.65) ~= 0.95 at every dimension.
SEPARATION_NORM = 3.3


def check_dimension(dimension: int, owner: str) -> None:
    """Raises `ConfigError` unless `dimension` is an integer >= 2 (naming `owner.dimension`)."""
    check(
        isinstance(dimension, int) and dimension >= 2,
        f"{owner}.dimension={dimension!r} must be an integer >= 2.",
    )


def uniform_separation(dimension: int, separation_norm: float = SEPARATION_NORM) -> np.ndarray:
    """The untuned guess: every input separates the classes equally, `|s| = separation_norm`."""
    check_dimension(dimension, "uniform_separation")
    return np.full(dimension, separation_norm / math.sqrt(dimension), np.float32)


def hidden_separation(dimension: int, seed: int = 2020, separation_norm: float = SEPARATION_NORM) -> np.ndarray:
    """The real data's per-input separation (see the module docstring); deterministic in `(seed, dimension)`.

    Returns:
      A `[dimension]` float32 vector of norm `separation_norm`, orthogonal to
      `uniform_separation(dimension)`, with half of its components of each sign.
    """
    check_dimension(dimension, "hidden_separation")
    rng = np.random.default_rng([seed, dimension])
    signs = rng.permutation(np.where(np.arange(dimension) < dimension // 2, 1.0, -1.0))
    separation = signs * rng.uniform(0.5, 1.5, size=dimension)
    # Balanced signs keep this shift small, so no component comes close to zero.
    separation -= separation.mean()
    return (separation * separation_norm / np.linalg.norm(separation)).astype(np.float32)


def bayes_accuracy(separation_norm: float = SEPARATION_NORM) -> float:
    """`Phi(|s| / 2)`: the accuracy of the best classifier on the real data."""
    return 0.5 * (1.0 + math.erf(separation_norm / 2.0 / math.sqrt(2.0)))


def sample_gaussian_classes(separation, num_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`(inputs [n, d] float32, labels [n] int32)`: uniform labels, `x ~ N((2y - 1) separation / 2, I)`."""
    separation = np.asarray(separation, np.float32)
    labels = rng.integers(0, 2, size=num_samples).astype(np.int32)
    signs = (2.0 * labels - 1.0)[:, None]
    inputs = signs * separation / 2.0 + rng.standard_normal((num_samples, separation.size))
    return inputs.astype(np.float32), labels


@gin.configurable
def gaussian_classes_real_data(
    dimension: int = 8,
    num_validation: int = 500,
    num_test: int = 4000,
    seed: int = 2020,
    separation_norm: float = SEPARATION_NORM,
) -> RealData:
    """The psi-dimension benchmark's real data: two Gaussian classes at `+-hidden_separation / 2`.

    Args:
      dimension: number of inputs (= psi components of `GaussianClassesSimulator`).
      num_validation: size of the validation set the optimiser sees.
      num_test: size of the held-out test set (disjoint draws).
      seed: fixes the hidden separation and both splits, so every method sees the same data.
      separation_norm: `|s|`; sets the Bayes accuracy `Phi(|s| / 2)`.

    Returns:
      A `RealData` with `[n, dimension]` float32 inputs and `[n]` int32 labels.

    Raises:
      ConfigError: naming the bad setting.
    """
    check_dimension(dimension, "gaussian_classes_real_data")
    check(
        num_validation >= 1 and num_test >= 1,
        f"gaussian_classes_real_data.num_validation={num_validation} and num_test={num_test} must be >= 1.",
    )
    check(separation_norm > 0, f"gaussian_classes_real_data.separation_norm={separation_norm} must be > 0.")
    separation = hidden_separation(dimension, seed, separation_norm)
    # Another stream than the separation's, so the splits do not reuse its draws.
    rng = np.random.default_rng([seed, dimension, 1])
    validation = sample_gaussian_classes(separation, num_validation, rng)
    test = sample_gaussian_classes(separation, num_test, rng)
    return RealData(validation[0], validation[1], test[0], test[1])
