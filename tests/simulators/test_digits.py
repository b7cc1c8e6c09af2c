"""`ProceduralDigitsSimulator`: the UCI-format renders, the padding variants and the glyphs.

The checks shared with `MnistDigitsSimulator` (latents, `log_prob`, the Simulator API and
pipeline, determinism, the untuned default, bounds, `random_parameters`, distinguishability
and sim-to-real transfer) are in `test_style_digits_conformance.py`. Here: that padding
variants have zero probability whatever psi, the renderer's output format (8x8 float32 with
integer values 0..16, label = latent digit), that every variant of every digit draws a
glyph spanning the box height, `block_counts`, and what `ink_exponent` does.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
from test_style_digits_conformance import UCI, default_renders_of

from autosimulate_tf.simulators.digits import (
    GLYPHS,
    VARIANT_COUNTS,
    VARIANT_NAMES,
    ProceduralDigitsSimulator,
    block_counts,
    render_bitmap,
)

mean_factors = UCI.mean_factors  # the default's mean of every factor, with the noise switched off


@pytest.fixture(scope="module")
def default_renders():
    """3000 training renders and 1000 fresh ones (another seed) from the untuned default."""
    return default_renders_of(UCI.id)


def test_padding_variants_have_zero_probability_whatever_psi():
    simulator = ProceduralDigitsSimulator()
    simulator.set_constrained_parameters({"variant_logits": np.full(len(VARIANT_NAMES), 4.0, np.float32)})
    matrix = simulator.variant_logit_matrix().numpy()
    probabilities = tf.nn.softmax(matrix).numpy()
    for digit, count in enumerate(VARIANT_COUNTS):
        np.testing.assert_allclose(probabilities[digit, :count], 1.0 / count, rtol=1e-6)
        assert np.all(probabilities[digit, count:] == 0.0)
    # The padding is a constant: psi has exactly one logit per existing variant.
    assert simulator.parameter("variant_logits").shape == (sum(VARIANT_COUNTS),)


def test_renders_have_the_uci_format_and_the_latent_digit_as_label(default_renders):
    latents, (images, labels), _ = default_renders
    assert images.shape == (3000, 8, 8) and images.dtype == np.float32
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, latents["digit"].numpy())
    assert np.all(images == np.round(images))
    assert images.min() >= 0.0 and images.max() <= 16.0
    assert images.max() == 16.0  # fully inked blocks occur
    assert np.all(images.sum(axis=(1, 2)) > 0), "an empty render"
    assert set(np.unique(labels)) == set(range(10))
    # `simulator.render` of one latent matching the batch render: test_style_digits_conformance.py.


@pytest.mark.parametrize("digit", range(10))
def test_every_variant_of_every_digit_draws_a_glyph_that_spans_the_box_height(digit):
    for variant in range(VARIANT_COUNTS[digit]):
        bitmap = render_bitmap(digit, variant, mean_factors(log_size=0.0), 0)
        rows = np.flatnonzero(bitmap.any(axis=1))
        columns = np.flatnonzero(bitmap.any(axis=0))
        name = GLYPHS[digit][variant][0]
        # size 1: the longest side (the height for every digit) fills the 32-pixel box.
        assert rows[-1] - rows[0] + 1 >= 30, (digit, name)
        assert 2 <= columns[-1] - columns[0] + 1 <= 30, (digit, name)  # a plain 1 is one stroke wide
        assert 0.05 < bitmap.mean() < 0.5, (digit, name)


def test_block_counts_reduce_32x32_to_8x8_counts():
    bitmap = np.zeros((32, 32), bool)
    bitmap[0, 0] = bitmap[5, 6] = bitmap[6, 7] = True
    bitmap[28:32, 28:32] = True
    counts = block_counts(bitmap)
    assert counts.shape == (8, 8) and counts.dtype == np.float32
    assert counts[0, 0] == 1 and counts[1, 1] == 2 and counts[7, 7] == 16 and counts.sum() == 19


def test_ink_exponent_one_evens_out_the_ink_of_short_and_long_glyphs():
    """`ink_exponent` 1 gives a short and a long glyph about the same ink; 0 keeps the stroke width.

    At 0 a plain 1 has far less ink than an 8; 1 scales the width by skeleton length, so
    both carry about the same ink, as the real UCI digits do.
    """

    def ink(digit, exponent):
        factors = mean_factors(log_thickness=math.log(3.0), log_distortion=-30.0, ink_exponent=exponent)
        return int(render_bitmap(digit, 0, factors, 0).sum())

    assert ink(8, 0.0) > 2.0 * ink(1, 0.0)
    assert 0.7 < ink(8, 1.0) / ink(1, 1.0) < 1.4
    # At the reference length the width is unchanged; shorter glyphs get thicker, longer thinner.
    assert ink(1, 1.0) > ink(1, 0.0) and ink(8, 1.0) < ink(8, 0.0)
