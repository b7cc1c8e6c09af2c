"""`MnistDigitsSimulator`: MNIST-style renders, `centre_by_mass`, the glyphs and the style factors.

The checks shared with `ProceduralDigitsSimulator` (latents, `log_prob`, the Simulator API
and pipeline, determinism, the untuned default, bounds, `random_parameters`,
distinguishability and sim-to-real transfer) are in `test_style_digits_conformance.py`.
Here: MNIST's format (28x28 float32, integer values 0..255, darkest pixel 255, black
background, the ink's longest side 20 px, centre of mass within half a pixel of (14, 14))
and that it matches the real data's, `centre_by_mass` on a known blob, the glyph vocabulary
(every variant of every digit draws a distinct glyph, the MNIST shapes are there and the UCI
table is unchanged), and that the style factors act as documented.
"""

import collections
import math

import numpy as np
import pytest
from test_style_digits_conformance import MNIST, SEED, default_renders_of

from autosimulate_tf.data import mnist_5k_real_data
from autosimulate_tf.simulators import digit_glyphs
from autosimulate_tf.simulators.mnist_digits import (
    VARIANT_COUNTS,
    VARIANT_NAMES,
    MnistDigitsSimulator,
    centre_by_mass,
    render_mnist_batch,
    render_mnist_digit,
)
from autosimulate_tf.simulators.mnist_glyphs import MNIST_GLYPHS

mean_factors = MNIST.mean_factors  # the default's mean of every factor


def centre_of_mass(images):
    """`[n, 2]` (row, column) centres of mass of `[n, 28, 28]` images."""
    rows, columns = np.indices(images.shape[1:])
    mass = images.sum(axis=(1, 2))
    return np.stack([(images * rows).sum(axis=(1, 2)) / mass, (images * columns).sum(axis=(1, 2)) / mass], axis=1)


def ink_extent(image):
    """`(height, width)` in px of the bounding box of the non-zero pixels."""
    rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1


@pytest.fixture(scope="module")
def default_renders():
    """2000 training renders and 1000 fresh ones (another seed) from the untuned default."""
    return default_renders_of(MNIST.id)


def test_renders_have_the_mnist_format(default_renders):
    latents, (images, labels), _ = default_renders
    assert images.shape == (2000, 28, 28) and images.dtype == np.float32 and labels.dtype == np.int32
    np.testing.assert_array_equal(labels, latents["digit"].numpy())
    assert np.all(images == np.round(images)) and images.min() == 0.0
    np.testing.assert_array_equal(images.max(axis=(1, 2)), 255.0)  # every image's darkest pixel, as in MNIST
    assert np.all(images[:, :, [0, -1]] == 0.0), "ink in the left or right border column"
    assert np.mean(images == 0.0) > 0.6  # white on black: mostly background
    assert 0.05 < np.mean((images > 0) & (images < 255)) < 0.5  # anti-aliased grey levels, not a bitmap
    # MNIST: the longest side fitted into 20 px, the centre of mass shifted by whole pixels to (14, 14).
    extents = np.array([ink_extent(image) for image in images])
    longest = extents.max(axis=1)
    assert np.all((longest >= 19) & (longest <= 21)) and np.mean(longest == 20) > 0.95, collections.Counter(longest)
    # Within half a pixel, up to the rounding of the grey levels to integers (measured <= 0.001 px).
    assert np.all(np.abs(centre_of_mass(images) - 14.0) <= 0.51)
    assert set(np.unique(labels)) == set(range(10))


def test_renders_look_like_the_real_data_in_format():
    """The same shape, dtype, value range and centring as `mnist_5k_real_data`'s images."""
    real = mnist_5k_real_data().validation_inputs
    renders, _ = render_mnist_batch(MnistDigitsSimulator().sample_latents(200, seed=SEED))
    assert renders.shape[1:] == real.shape[1:] and renders.dtype == real.dtype
    assert renders.min() == real.min() == 0.0 and renders.max() == real.max() == 255.0
    for images in (real, renders):
        np.testing.assert_allclose(centre_of_mass(images).mean(axis=0), 14.0, atol=0.1)
        assert np.median([max(ink_extent(image)) for image in images]) == 20


def test_centre_by_mass_moves_a_blob_to_14_14_by_whole_pixels():
    box = np.zeros((24, 24), np.float32)
    box[3:6, 18:21] = 1.0  # centre of mass (4, 19)
    image = centre_by_mass(box)
    assert image.shape == (28, 28) and image.sum() == box.sum()
    assert np.array_equal(np.argwhere(image > 0).mean(axis=0), [14.0, 14.0])


def test_glyph_vocabulary_has_the_mnist_shapes_and_keeps_the_uci_table():
    for name in ("1_plain", "1_flag", "2_looped", "4_open", "4_closed", "4_open_u", "8_stacked", "8_crossed"):
        assert name in VARIANT_NAMES, name
    assert {"9_straight", "9_open"} <= set(VARIANT_NAMES)
    for digit, variants in digit_glyphs.GLYPHS.items():  # the UCI variants come first, unchanged
        assert MNIST_GLYPHS[digit][: len(variants)] == variants
    assert [len(variants) for variants in digit_glyphs.GLYPHS.values()] == [2, 3, 2, 2, 2, 2, 2, 3, 2, 2]


@pytest.mark.parametrize("digit", range(10))
def test_every_variant_of_every_digit_draws_a_distinct_glyph(digit):
    images = [render_mnist_digit(digit, variant, mean_factors(), 0) for variant in range(VARIANT_COUNTS[digit])]
    for variant, image in enumerate(images):
        name = VARIANT_NAMES[sum(VARIANT_COUNTS[:digit]) + variant]
        assert max(ink_extent(image)) == 20, name
        assert 0.03 < np.mean(image > 0) < 0.5, name
    for first in range(len(images)):
        for second in range(first + 1, len(images)):
            # At least a few strongly inked pixels differ (a 7's serif is a short stroke).
            assert np.sum(np.abs(images[first] - images[second]) > 100) >= 5, (digit, first, second)


def test_style_factors_act_as_documented():
    """Thicker strokes carry more ink; a positive shear leans the top to the right; softness adds grey."""
    quiet = {"log_distortion": -30.0, "log_pressure": -30.0, "rotation": 0.0, "shear": 0.0}
    thin = render_mnist_digit(1, 0, mean_factors(**quiet, log_thickness=math.log(1.5)), 0)
    thick = render_mnist_digit(1, 0, mean_factors(**quiet, log_thickness=math.log(4.0)), 0)
    assert thick.sum() > 1.8 * thin.sum()
    leaning = render_mnist_digit(1, 0, mean_factors(**{**quiet, "shear": 0.4}), 0)
    top, bottom = leaning[4:8], leaning[20:24]
    columns = np.arange(28)
    assert (top * columns).sum() / top.sum() > (bottom * columns).sum() / bottom.sum() + 3.0
    hard = render_mnist_digit(0, 0, mean_factors(**quiet, log_softness=math.log(0.05)), 0)
    soft = render_mnist_digit(0, 0, mean_factors(**quiet, log_softness=math.log(2.0)), 0)
    assert np.mean((soft > 0) & (soft < 200)) > 1.5 * np.mean((hard > 0) & (hard < 200))
