"""`ProceduralDigitsSimulator`: latents, `log_prob`, the UCI-format renders, psi and the untuned default.

Covers the latent structure and that sampled variants exist for their digit, `log_prob`
(finite for 2000 latents, the closed form at the default psi, finite gradients in every psi
component), the renderer's output format (8x8 float32 with integer values 0..16, label =
latent digit, through `render` and through the `tf.data` pipeline), that every digit and
variant draws ink, determinism given the latent, the documented untuned default (psi
values and sample moments against the hand-set ranges written out independently here),
bounds and `random_parameters`, that the classes are distinguishable (a classifier trained
on renders scores >= 95% on fresh renders) and a sim-to-real sanity check on the real UCI
test split (> 50%).
"""

import collections
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from sklearn.svm import SVC

from autosimulate_tf.data import render_latents
from autosimulate_tf.data.digits import uci_digits_real_data
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators.digits import (
    FACTOR_NAMES,
    GLYPHS,
    MAX_VARIANTS,
    VARIANT_COUNTS,
    VARIANT_NAMES,
    ProceduralDigitsSimulator,
    block_counts,
    render_batch,
    render_bitmap,
    render_digit,
)

SEED = tf.constant([1, 2])
# The hand-set untuned default, written out here independently of the module's table:
# factor -> (low, high, the latent is the log of the natural value).
DOCUMENTED_DEFAULT_RANGES = {
    "rotation": (-15.0, 15.0, False),
    "shear": (-0.3, 0.3, False),
    "log_size": (0.7, 1.0, True),
    "log_aspect": (0.8, 1.2, True),
    "shift_x": (-2.0, 2.0, False),
    "shift_y": (-2.0, 2.0, False),
    "log_thickness": (1.5, 4.0, True),
    "log_distortion": (0.5, 2.0, True),
    "log_noise": (0.001, 0.01, True),
    "ink_exponent": (-0.1, 0.1, False),
}


def documented_moments(name):
    """`(mean, std)` in latent units of the documented uniform default range of factor `name`."""
    low, high, log_space = DOCUMENTED_DEFAULT_RANGES[name]
    if log_space:
        low, high = math.log(low), math.log(high)
    return 0.5 * (low + high), (high - low) / math.sqrt(12.0)


def mean_factors(**overrides):
    """The default's mean of every factor, with the noise switched off."""
    factors = {name: documented_moments(name)[0] for name in FACTOR_NAMES}
    factors["log_noise"] = -30.0
    factors.update(overrides)
    return factors


def classifier():
    """The SVC used to check that renders are distinguishable and transfer to the real digits."""
    return SVC(C=10.0, gamma="scale")


@pytest.fixture(scope="module")
def default_renders():
    """3000 training renders and 1000 fresh ones (another seed) from the untuned default."""
    simulator = ProceduralDigitsSimulator()
    train_latents = simulator.sample_latents(3000, seed=tf.constant([11, 12]))
    fresh_latents = simulator.sample_latents(1000, seed=tf.constant([21, 22]))
    return train_latents, render_batch(train_latents), render_batch(fresh_latents)


def test_latent_structure_and_dtypes():
    latents = ProceduralDigitsSimulator().sample_latents(64, seed=SEED)
    assert set(latents) == {"digit", "variant", *FACTOR_NAMES, "noise_seed"}
    for name, value in latents.items():
        assert value.shape == (64,), name
        expected = tf.int32 if name in ("digit", "variant") else tf.float32
        assert value.dtype == expected, name
    noise_seed = latents["noise_seed"].numpy()
    assert np.all((noise_seed >= 0.0) & (noise_seed < 1.0))


def test_sampled_variants_exist_for_their_digit_and_every_variant_occurs():
    latents = ProceduralDigitsSimulator().sample_latents(2000, seed=SEED)
    digits, variants = latents["digit"].numpy(), latents["variant"].numpy()
    assert np.all(variants < np.asarray(VARIANT_COUNTS)[digits])
    assert {(int(d), int(v)) for d, v in zip(digits, variants, strict=True)} == {
        (digit, variant) for digit in range(10) for variant in range(VARIANT_COUNTS[digit])
    }
    assert len(VARIANT_NAMES) == sum(VARIANT_COUNTS) and max(VARIANT_COUNTS) <= MAX_VARIANTS


def test_log_prob_is_finite_for_2000_latents_with_finite_gradients_in_every_psi_component():
    simulator = ProceduralDigitsSimulator()
    latents = simulator.sample_latents(2000, seed=SEED)
    with tf.GradientTape() as tape:
        log_prob = simulator.log_prob(latents)
        total = tf.reduce_sum(log_prob)
    assert log_prob.shape == (2000,)
    assert np.all(np.isfinite(log_prob.numpy()))
    gradients = tape.gradient(total, simulator.psi_variables)
    for name, gradient in zip(simulator.parameter_names, gradients, strict=True):
        assert gradient is not None, name
        assert np.all(np.isfinite(tf.convert_to_tensor(gradient).numpy())), name


def test_log_prob_at_the_default_matches_the_closed_form():
    simulator = ProceduralDigitsSimulator()
    latents = simulator.sample_latents(50, seed=SEED)
    digits = latents["digit"].numpy()
    expected = np.log(0.1) - np.log(np.asarray(VARIANT_COUNTS, np.float64)[digits])  # uniform prior and variants
    for name in FACTOR_NAMES:
        mean, std = documented_moments(name)
        expected += stats.norm.logpdf(latents[name].numpy(), mean, std)
    # noise_seed ~ Uniform(0, 1) adds log 1 = 0.
    np.testing.assert_allclose(simulator.log_prob(latents).numpy(), expected, rtol=1e-4, atol=1e-3)


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
    # The Simulator API renders one latent from numpy scalars, as tf.numpy_function passes them.
    simulator = ProceduralDigitsSimulator()
    latent = {name: value[7].numpy() for name, value in latents.items()}
    image, label = simulator.render(latent)
    np.testing.assert_array_equal(image, images[7])
    assert label.dtype == np.int32 and int(label) == int(latents["digit"][7])


def test_render_latents_pipeline_matches_the_direct_render():
    simulator = ProceduralDigitsSimulator()
    latents = simulator.sample_latents(64, seed=SEED)
    rendered = render_latents(simulator, latents)
    assert bool(tf.reduce_all(rendered.valid))
    images, labels = render_batch(latents)
    np.testing.assert_array_equal(rendered.inputs.numpy(), images)
    np.testing.assert_array_equal(rendered.labels.numpy(), labels)


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


def test_rendering_is_deterministic_given_the_latent():
    factors = mean_factors(log_noise=math.log(0.05), log_distortion=math.log(2.0))
    first = render_digit(3, 1, factors, np.float32(0.25))
    assert np.array_equal(first, render_digit(3, 1, factors, np.float32(0.25)))
    assert np.array_equal(first, render_digit(3, 1, factors, 0.25))  # float64 hashes like its float32
    assert not np.array_equal(first, render_digit(3, 1, factors, np.float32(0.75)))  # the seed drives the noise


def test_unknown_digit_or_variant_raises_naming_them():
    with pytest.raises(ValueError, match=r"digit=0, variant=2"):
        render_digit(0, 2, mean_factors(), 0)
    with pytest.raises(ValueError, match=r"digit=10"):
        render_digit(10, 0, mean_factors(), 0)


def test_block_counts_reduce_32x32_to_8x8_counts():
    bitmap = np.zeros((32, 32), bool)
    bitmap[0, 0] = bitmap[5, 6] = bitmap[6, 7] = True
    bitmap[28:32, 28:32] = True
    counts = block_counts(bitmap)
    assert counts.shape == (8, 8) and counts.dtype == np.float32
    assert counts[0, 0] == 1 and counts[1, 1] == 2 and counts[7, 7] == 16 and counts.sum() == 19


def test_untuned_default_matches_the_documented_hand_set_ranges():
    simulator = ProceduralDigitsSimulator()
    psi = simulator.constrained_parameters()
    np.testing.assert_array_equal(psi["class_logits"], np.zeros(10))
    np.testing.assert_array_equal(psi["variant_logits"], np.zeros(len(VARIANT_NAMES)))
    num_samples = 20000
    latents = simulator.sample_latents(num_samples, seed=tf.constant([5, 6]))
    for name in FACTOR_NAMES:
        mean, std = documented_moments(name)
        assert psi[f"{name}_mean"] == pytest.approx(mean, rel=1e-5, abs=1e-6), name
        assert math.exp(psi[f"{name}_log_scale"]) == pytest.approx(std, rel=1e-5), name
        samples = latents[name].numpy().astype(np.float64)
        assert abs(samples.mean() - mean) < 4 * std / math.sqrt(num_samples), name
        assert abs(samples.std() - std) < 4 * std / math.sqrt(2 * num_samples), name
    # In natural units the bulk lies in the hand-set range, e.g. rotation within +-15 degrees
    # about 1 - 2 * Phi(-sqrt(3)) ~= 91.7% of the time.
    rotation = latents["rotation"].numpy()
    assert np.mean(np.abs(rotation) <= 15.0) == pytest.approx(0.917, abs=0.01)
    thickness = np.exp(latents["log_thickness"].numpy())
    assert np.mean((thickness >= 1.5) & (thickness <= 4.0)) == pytest.approx(0.917, abs=0.01)


def test_every_psi_component_has_bounds_containing_the_default():
    simulator = ProceduralDigitsSimulator()
    assert set(simulator.parameter_names) == {
        "class_logits",
        "variant_logits",
        *(f"{name}_{part}" for name in FACTOR_NAMES for part in ("mean", "log_scale")),
    }
    for name, value in simulator.constrained_parameters().items():
        bounds = simulator.parameter_bounds(name)
        assert bounds is not None, name
        assert np.all((bounds[0] <= value) & (value <= bounds[1])), (name, value, bounds)


def test_random_parameters_give_valid_latents_and_renders():
    simulator = ProceduralDigitsSimulator()
    rng = np.random.default_rng(0)
    for draw in range(3):
        values = simulator.random_parameters(rng)
        simulator.set_constrained_parameters(values)
        for name, value in simulator.constrained_parameters().items():
            np.testing.assert_allclose(value, values[name], rtol=1e-5, atol=1e-5)
        latents = simulator.sample_latents(200, seed=tf.constant([draw, 3]))
        assert np.all(np.isfinite(simulator.log_prob(latents).numpy()))
        images, _ = render_batch(latents)
        assert np.all((images >= 0) & (images <= 16)) and np.all(images == np.round(images))


def test_constructor_rejects_a_bad_logit_bound():
    with pytest.raises(ConfigError, match=r"ProceduralDigitsSimulator\.logit_bound=0\.0 must be"):
        ProceduralDigitsSimulator(logit_bound=0.0)


def test_every_class_is_distinguishable_on_fresh_renders(default_renders):
    _, (train_images, train_labels), (fresh_images, fresh_labels) = default_renders
    counts = collections.Counter(train_labels.tolist())
    assert min(counts.values()) >= 250  # ~300 per class under the uniform prior
    model = classifier().fit(train_images.reshape(-1, 64) / 16.0, train_labels)
    predictions = model.predict(fresh_images.reshape(-1, 64) / 16.0)
    assert np.mean(predictions == fresh_labels) >= 0.95
    for digit in range(10):  # no class is systematically lost
        assert np.mean(predictions[fresh_labels == digit] == digit) >= 0.85, digit


def test_default_renders_transfer_to_the_real_uci_test_split(default_renders):
    _, (train_images, train_labels), _ = default_renders
    real = uci_digits_real_data()
    model = classifier().fit(train_images.reshape(-1, 64) / 16.0, train_labels)
    accuracy = model.score(real.test_inputs.reshape(-1, 64) / 16.0, real.test_labels)
    # Measured ~0.76 (SVC, 3000 renders); far above chance (0.1), far below real-trained (~0.98).
    assert accuracy > 0.5


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
