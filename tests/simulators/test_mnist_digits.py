"""`MnistDigitsSimulator`: latents, `log_prob`, MNIST-style renders, psi and the untuned default.

Covers the latent structure and that sampled variants exist for their digit, `log_prob`
(finite for 2000 latents with finite gradients in every psi component, the closed form at
the default psi), MNIST's format (28x28 float32, integer values 0..255, darkest pixel 255,
black background, the ink's longest side 20 px, centre of mass within half a pixel of
(14, 14), also through the `tf.data` pipeline), `centre_by_mass` on a known blob, the glyph
vocabulary (every variant of every digit draws ink, the MNIST shapes are there and the UCI
table is unchanged), determinism given the latent, the documented untuned default (psi
values and sample moments against the hand-set ranges written out independently here),
bounds and `random_parameters`, that the classes are distinguishable (a classifier trained
on renders scores >= 95% on fresh renders, >= 85% per class), and a sim-to-real sanity
check on the real MNIST test split (> 50%).
"""

import collections
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from sklearn.svm import SVC

from autosimulate_tf.data import mnist_5k_real_data, render_latents
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators import digit_glyphs
from autosimulate_tf.simulators.mnist_digits import (
    FACTOR_NAMES,
    MAX_VARIANTS,
    VARIANT_COUNTS,
    VARIANT_NAMES,
    MnistDigitsSimulator,
    centre_by_mass,
    render_mnist_batch,
    render_mnist_digit,
)
from autosimulate_tf.simulators.mnist_glyphs import MNIST_GLYPHS

SEED = tf.constant([1, 2])
# The hand-set untuned default, written out here independently of the module's table:
# factor -> (low, high, the latent is the log of the natural value).
DOCUMENTED_DEFAULT_RANGES = {
    "rotation": (-15.0, 15.0, False),
    "shear": (-0.3, 0.3, False),
    "log_aspect": (0.8, 1.2, True),
    "log_thickness": (1.0, 3.0, True),
    "log_distortion": (0.3, 1.2, True),
    "log_softness": (0.25, 1.0, True),
    "log_pressure": (0.05, 0.2, True),
    "ink_exponent": (-0.1, 0.1, False),
}


def documented_moments(name):
    """`(mean, std)` in latent units of the documented uniform default range of factor `name`."""
    low, high, log_space = DOCUMENTED_DEFAULT_RANGES[name]
    if log_space:
        low, high = math.log(low), math.log(high)
    return 0.5 * (low + high), (high - low) / math.sqrt(12.0)


def mean_factors(**overrides):
    """The default's mean of every factor."""
    factors = {name: documented_moments(name)[0] for name in FACTOR_NAMES}
    factors.update(overrides)
    return factors


def classifier():
    """The SVC used to check that renders are distinguishable and transfer to the real digits."""
    return SVC(C=10.0, gamma="scale")


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
    simulator = MnistDigitsSimulator()
    train_latents = simulator.sample_latents(2000, seed=tf.constant([11, 12]))
    fresh_latents = simulator.sample_latents(1000, seed=tf.constant([21, 22]))
    return train_latents, render_mnist_batch(train_latents), render_mnist_batch(fresh_latents)


def test_latent_structure_and_dtypes():
    latents = MnistDigitsSimulator().sample_latents(64, seed=SEED)
    assert set(latents) == {"digit", "variant", *FACTOR_NAMES, "noise_seed"}
    for name, value in latents.items():
        assert value.shape == (64,), name
        assert value.dtype == (tf.int32 if name in ("digit", "variant") else tf.float32), name


def test_sampled_variants_exist_for_their_digit_and_every_variant_occurs():
    latents = MnistDigitsSimulator().sample_latents(2000, seed=SEED)
    digits, variants = latents["digit"].numpy(), latents["variant"].numpy()
    assert np.all(variants < np.asarray(VARIANT_COUNTS)[digits])
    assert {(int(d), int(v)) for d, v in zip(digits, variants, strict=True)} == {
        (digit, variant) for digit in range(10) for variant in range(VARIANT_COUNTS[digit])
    }
    assert len(VARIANT_NAMES) == sum(VARIANT_COUNTS) == 25 and max(VARIANT_COUNTS) == MAX_VARIANTS == 3


def test_log_prob_is_finite_for_2000_latents_with_finite_gradients_in_every_psi_component():
    simulator = MnistDigitsSimulator()
    latents = simulator.sample_latents(2000, seed=SEED)
    with tf.GradientTape() as tape:
        log_prob = simulator.log_prob(latents)
        total = tf.reduce_sum(log_prob)
    assert log_prob.shape == (2000,) and np.all(np.isfinite(log_prob.numpy()))
    gradients = tape.gradient(total, simulator.psi_variables)
    for name, gradient in zip(simulator.parameter_names, gradients, strict=True):
        assert gradient is not None, name
        assert np.all(np.isfinite(tf.convert_to_tensor(gradient).numpy())), name


def test_log_prob_at_the_default_matches_the_closed_form():
    simulator = MnistDigitsSimulator()
    latents = simulator.sample_latents(50, seed=SEED)
    digits = latents["digit"].numpy()
    expected = np.log(0.1) - np.log(np.asarray(VARIANT_COUNTS, np.float64)[digits])  # uniform prior and variants
    for name in FACTOR_NAMES:
        mean, std = documented_moments(name)
        expected += stats.norm.logpdf(latents[name].numpy(), mean, std)
    np.testing.assert_allclose(simulator.log_prob(latents).numpy(), expected, rtol=1e-4, atol=1e-3)


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


def test_the_simulator_api_and_the_pipeline_render_like_render_mnist_batch():
    simulator = MnistDigitsSimulator()
    latents = simulator.sample_latents(32, seed=SEED)
    images, labels = render_mnist_batch(latents)
    image, label = simulator.render({name: value[7].numpy() for name, value in latents.items()})
    np.testing.assert_array_equal(image, images[7])
    assert label.dtype == np.int32 and int(label) == int(latents["digit"][7])
    rendered = render_latents(simulator, latents)
    assert bool(tf.reduce_all(rendered.valid))
    np.testing.assert_array_equal(rendered.inputs.numpy(), images)
    np.testing.assert_array_equal(rendered.labels.numpy(), labels)


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


def test_rendering_is_deterministic_given_the_latent():
    factors = mean_factors(log_distortion=math.log(2.0), log_pressure=math.log(0.3))
    first = render_mnist_digit(3, 1, factors, np.float32(0.25))
    assert np.array_equal(first, render_mnist_digit(3, 1, factors, np.float32(0.25)))
    assert np.array_equal(first, render_mnist_digit(3, 1, factors, 0.25))  # float64 hashes like its float32
    assert not np.array_equal(first, render_mnist_digit(3, 1, factors, np.float32(0.75)))


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


def test_unknown_digit_or_variant_raises_naming_them():
    with pytest.raises(ValueError, match=r"digit=0, variant=2"):
        render_mnist_digit(0, 2, mean_factors(), 0)
    with pytest.raises(ValueError, match=r"digit=10"):
        render_mnist_digit(10, 0, mean_factors(), 0)


def test_untuned_default_matches_the_documented_hand_set_ranges():
    simulator = MnistDigitsSimulator()
    psi = simulator.constrained_parameters()
    np.testing.assert_array_equal(psi["class_logits"], np.zeros(10))
    np.testing.assert_array_equal(psi["variant_logits"], np.zeros(25))
    num_samples = 20000
    latents = simulator.sample_latents(num_samples, seed=tf.constant([5, 6]))
    for name in FACTOR_NAMES:
        mean, std = documented_moments(name)
        assert psi[f"{name}_mean"] == pytest.approx(mean, rel=1e-5, abs=1e-6), name
        assert math.exp(psi[f"{name}_log_scale"]) == pytest.approx(std, rel=1e-5), name
        samples = latents[name].numpy().astype(np.float64)
        assert abs(samples.mean() - mean) < 4 * std / math.sqrt(num_samples), name
        assert abs(samples.std() - std) < 4 * std / math.sqrt(2 * num_samples), name
    thickness = np.exp(latents["log_thickness"].numpy())
    assert np.mean((thickness >= 1.0) & (thickness <= 3.0)) == pytest.approx(0.917, abs=0.01)


def test_every_psi_component_has_bounds_containing_the_default():
    simulator = MnistDigitsSimulator()
    assert simulator.parameter_names == [
        "class_logits",
        "variant_logits",
        *(f"{name}_{part}" for name in FACTOR_NAMES for part in ("mean", "log_scale")),
    ]
    assert simulator.unconstrained_vector().size == 10 + 25 + 2 * 8
    for name, value in simulator.constrained_parameters().items():
        bounds = simulator.parameter_bounds(name)
        assert bounds is not None, name
        assert np.all((bounds[0] <= value) & (value <= bounds[1])), (name, value, bounds)
    assert MnistDigitsSimulator(tune_class_prior=False).parameter_names[0] == "variant_logits"


def test_random_parameters_give_valid_latents_and_renders():
    simulator = MnistDigitsSimulator()
    rng = np.random.default_rng(0)
    for draw in range(3):
        simulator.set_constrained_parameters(simulator.random_parameters(rng))
        latents = simulator.sample_latents(100, seed=tf.constant([draw, 3]))
        assert np.all(np.isfinite(simulator.log_prob(latents).numpy()))
        images, _ = render_mnist_batch(latents)
        assert np.all(np.isfinite(images)) and np.all(images.max(axis=(1, 2)) == 255.0)


def test_constructor_rejects_a_bad_logit_bound():
    with pytest.raises(ConfigError, match=r"MnistDigitsSimulator\.logit_bound=0\.0 must be"):
        MnistDigitsSimulator(logit_bound=0.0)


def test_every_class_is_distinguishable_on_fresh_renders(default_renders):
    _, (train_images, train_labels), (fresh_images, fresh_labels) = default_renders
    assert min(collections.Counter(train_labels.tolist()).values()) >= 150  # ~200 per class
    model = classifier().fit(train_images.reshape(-1, 784) / 255.0, train_labels)
    predictions = model.predict(fresh_images.reshape(-1, 784) / 255.0)
    assert np.mean(predictions == fresh_labels) >= 0.95
    for digit in range(10):  # no class is systematically lost
        assert np.mean(predictions[fresh_labels == digit] == digit) >= 0.85, digit


def test_default_renders_transfer_to_the_real_mnist_test_split(default_renders):
    _, (train_images, train_labels), _ = default_renders
    real = mnist_5k_real_data()
    model = classifier().fit(train_images.reshape(-1, 784) / 255.0, train_labels)
    accuracy = model.score(real.test_inputs.reshape(-1, 784) / 255.0, real.test_labels)
    # Measured 0.78 (SVC, 2000 renders): far above chance (0.1), far below real-trained models.
    assert accuracy > 0.5
