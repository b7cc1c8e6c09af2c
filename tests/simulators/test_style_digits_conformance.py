"""What both `StyleDigitsSimulator`s (UCI 8x8 and MNIST 28x28) must do, checked once for each.

Every test runs for `ProceduralDigitsSimulator` ("uci") and `MnistDigitsSimulator` ("mnist");
the per-simulator expectations (the documented untuned default ranges, value range, sample
sizes, accuracy thresholds) are one `SimulatorSpec` each. Covers the latent structure and
that sampled variants exist for their digit, `log_prob` (finite for 2000 latents with finite
gradients in every psi component, the closed form at the default psi), that the Simulator
API and the `tf.data` pipeline render like the batch renderer, determinism given the latent,
the error naming an unknown digit or variant, the documented untuned default (psi values
and sample moments against the hand-set ranges written out independently here), bounds and
`random_parameters`, the constructor's `logit_bound` check, that the classes are
distinguishable (a classifier trained on renders scores >= 95% on fresh renders, >= 85% per
class) and a sim-to-real sanity check on the real test split (> 50%).

`test_digits.py` and `test_mnist_digits.py` keep the simulator-specific tests; they use
`UCI` / `MNIST` and `default_renders_of` from here, so the default renders are made once.
"""

import collections
import dataclasses
import functools
import math
import types
from collections.abc import Callable, Mapping

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from sklearn.svm import SVC

from autosimulate_tf.data import mnist_5k_real_data, render_latents
from autosimulate_tf.data.digits import uci_digits_real_data
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators import digits as uci_digits
from autosimulate_tf.simulators import mnist_digits

SEED = tf.constant([1, 2])


@dataclasses.dataclass(frozen=True)
class SimulatorSpec:
    """One simulator under test and what the shared tests expect of it."""

    id: str
    simulator_class: type
    module: types.ModuleType  # FACTOR_NAMES, VARIANT_COUNTS, VARIANT_NAMES, MAX_VARIANTS
    render_batch: Callable
    render_digit: Callable
    # The hand-set untuned default, written out here independently of the module's table:
    # factor -> (low, high, the latent is the log of the natural value).
    documented_ranges: Mapping[str, tuple[float, float, bool]]
    quiet_overrides: Mapping[str, float]  # what `mean_factors` switches off by default
    noisy_overrides: Mapping[str, float]  # factors that make a render depend on its noise seed
    num_variants: int
    max_variants: int
    max_variants_is_the_largest_count: bool  # no digit-independent padding slot
    max_value: float  # the darkest pixel value
    every_random_render_reaches_max_value: bool
    num_random_latents: int
    num_api_latents: int
    num_train_renders: int
    min_train_class_count: int
    real_data: Callable

    def moments(self, name):
        """`(mean, std)` in latent units of the documented uniform default range of factor `name`."""
        low, high, log_space = self.documented_ranges[name]
        if log_space:
            low, high = math.log(low), math.log(high)
        return 0.5 * (low + high), (high - low) / math.sqrt(12.0)

    def mean_factors(self, **overrides):
        """The default's mean of every factor, with `quiet_overrides` (e.g. UCI's noise off) applied."""
        factors = {name: self.moments(name)[0] for name in self.module.FACTOR_NAMES}
        factors.update(self.quiet_overrides)
        factors.update(overrides)
        return factors


UCI = SimulatorSpec(
    id="uci",
    simulator_class=uci_digits.ProceduralDigitsSimulator,
    module=uci_digits,
    render_batch=uci_digits.render_batch,
    render_digit=uci_digits.render_digit,
    documented_ranges={
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
    },
    quiet_overrides={"log_noise": -30.0},
    noisy_overrides={"log_noise": math.log(0.05), "log_distortion": math.log(2.0)},
    num_variants=22,
    max_variants=3,
    max_variants_is_the_largest_count=False,
    max_value=16.0,
    every_random_render_reaches_max_value=False,
    num_random_latents=200,
    num_api_latents=64,
    num_train_renders=3000,
    min_train_class_count=250,  # ~300 per class under the uniform prior
    real_data=uci_digits_real_data,  # measured ~0.76 (SVC, 3000 renders)
)
MNIST = SimulatorSpec(
    id="mnist",
    simulator_class=mnist_digits.MnistDigitsSimulator,
    module=mnist_digits,
    render_batch=mnist_digits.render_mnist_batch,
    render_digit=mnist_digits.render_mnist_digit,
    documented_ranges={
        "rotation": (-15.0, 15.0, False),
        "shear": (-0.3, 0.3, False),
        "log_aspect": (0.8, 1.2, True),
        "log_thickness": (1.0, 3.0, True),
        "log_distortion": (0.3, 1.2, True),
        "log_softness": (0.25, 1.0, True),
        "log_pressure": (0.05, 0.2, True),
        "ink_exponent": (-0.1, 0.1, False),
    },
    quiet_overrides={},
    noisy_overrides={"log_distortion": math.log(2.0), "log_pressure": math.log(0.3)},
    num_variants=25,
    max_variants=3,
    max_variants_is_the_largest_count=True,
    max_value=255.0,
    every_random_render_reaches_max_value=True,
    num_random_latents=100,
    num_api_latents=32,
    num_train_renders=2000,
    min_train_class_count=150,  # ~200 per class
    real_data=mnist_5k_real_data,  # measured 0.78 (SVC, 2000 renders)
)
SPECS = {spec.id: spec for spec in (UCI, MNIST)}


@functools.cache
def default_renders_of(spec_id):
    """`(train latents, train renders, fresh renders)` of the untuned default, made once per test run."""
    spec = SPECS[spec_id]
    simulator = spec.simulator_class()
    train_latents = simulator.sample_latents(spec.num_train_renders, seed=tf.constant([11, 12]))
    fresh_latents = simulator.sample_latents(1000, seed=tf.constant([21, 22]))
    return train_latents, spec.render_batch(train_latents), spec.render_batch(fresh_latents)


def classifier():
    """The SVC used to check that renders are distinguishable and transfer to the real digits."""
    return SVC(C=10.0, gamma="scale")


def flat(images, spec):
    """`[n, pixels]` images scaled to [0, 1]."""
    return images.reshape(len(images), -1) / spec.max_value


@pytest.fixture(params=[UCI, MNIST], ids=lambda spec: spec.id)
def spec(request):
    """Each simulator's `SimulatorSpec`."""
    return request.param


@pytest.fixture
def default_renders(spec):
    """The spec's untuned-default renders (`default_renders_of`)."""
    return default_renders_of(spec.id)


def test_latent_structure_and_dtypes(spec):
    latents = spec.simulator_class().sample_latents(64, seed=SEED)
    assert set(latents) == {"digit", "variant", *spec.module.FACTOR_NAMES, "noise_seed"}
    for name, value in latents.items():
        assert value.shape == (64,), name
        expected = tf.int32 if name in ("digit", "variant") else tf.float32
        assert value.dtype == expected, name
    noise_seed = latents["noise_seed"].numpy()
    assert np.all((noise_seed >= 0.0) & (noise_seed < 1.0))


def test_sampled_variants_exist_for_their_digit_and_every_variant_occurs(spec):
    latents = spec.simulator_class().sample_latents(2000, seed=SEED)
    digits, variants = latents["digit"].numpy(), latents["variant"].numpy()
    counts = spec.module.VARIANT_COUNTS
    assert np.all(variants < np.asarray(counts)[digits])
    assert {(int(d), int(v)) for d, v in zip(digits, variants, strict=True)} == {
        (digit, variant) for digit in range(10) for variant in range(counts[digit])
    }
    assert len(spec.module.VARIANT_NAMES) == sum(counts) == spec.num_variants
    assert max(counts) <= spec.module.MAX_VARIANTS == spec.max_variants
    if spec.max_variants_is_the_largest_count:
        assert max(counts) == spec.module.MAX_VARIANTS


def test_log_prob_is_finite_for_2000_latents_with_finite_gradients_in_every_psi_component(spec):
    simulator = spec.simulator_class()
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


def test_log_prob_at_the_default_matches_the_closed_form(spec):
    simulator = spec.simulator_class()
    latents = simulator.sample_latents(50, seed=SEED)
    digits = latents["digit"].numpy()
    counts = np.asarray(spec.module.VARIANT_COUNTS, np.float64)
    expected = np.log(0.1) - np.log(counts[digits])  # uniform prior and variants
    for name in spec.module.FACTOR_NAMES:
        mean, std = spec.moments(name)
        expected += stats.norm.logpdf(latents[name].numpy(), mean, std)
    # noise_seed ~ Uniform(0, 1) adds log 1 = 0.
    np.testing.assert_allclose(simulator.log_prob(latents).numpy(), expected, rtol=1e-4, atol=1e-3)


def test_the_simulator_api_and_the_pipeline_render_like_the_batch_renderer(spec):
    simulator = spec.simulator_class()
    latents = simulator.sample_latents(spec.num_api_latents, seed=SEED)
    images, labels = spec.render_batch(latents)
    # The Simulator API renders one latent from numpy scalars, as tf.numpy_function passes them.
    image, label = simulator.render({name: value[7].numpy() for name, value in latents.items()})
    np.testing.assert_array_equal(image, images[7])
    assert label.dtype == np.int32 and int(label) == int(latents["digit"][7])
    rendered = render_latents(simulator, latents)
    assert bool(tf.reduce_all(rendered.valid))
    np.testing.assert_array_equal(rendered.inputs.numpy(), images)
    np.testing.assert_array_equal(rendered.labels.numpy(), labels)


def test_rendering_is_deterministic_given_the_latent(spec):
    factors = spec.mean_factors(**spec.noisy_overrides)
    first = spec.render_digit(3, 1, factors, np.float32(0.25))
    assert np.array_equal(first, spec.render_digit(3, 1, factors, np.float32(0.25)))
    assert np.array_equal(first, spec.render_digit(3, 1, factors, 0.25))  # float64 hashes like its float32
    assert not np.array_equal(first, spec.render_digit(3, 1, factors, np.float32(0.75)))  # the seed drives the noise


def test_unknown_digit_or_variant_raises_naming_them(spec):
    with pytest.raises(ValueError, match=r"digit=0, variant=2"):
        spec.render_digit(0, 2, spec.mean_factors(), 0)
    with pytest.raises(ValueError, match=r"digit=10"):
        spec.render_digit(10, 0, spec.mean_factors(), 0)


def test_untuned_default_matches_the_documented_hand_set_ranges(spec):
    simulator = spec.simulator_class()
    psi = simulator.constrained_parameters()
    np.testing.assert_array_equal(psi["class_logits"], np.zeros(10))
    np.testing.assert_array_equal(psi["variant_logits"], np.zeros(spec.num_variants))
    num_samples = 20000
    latents = simulator.sample_latents(num_samples, seed=tf.constant([5, 6]))
    for name in spec.module.FACTOR_NAMES:
        mean, std = spec.moments(name)
        assert psi[f"{name}_mean"] == pytest.approx(mean, rel=1e-5, abs=1e-6), name
        assert math.exp(psi[f"{name}_log_scale"]) == pytest.approx(std, rel=1e-5), name
        samples = latents[name].numpy().astype(np.float64)
        assert abs(samples.mean() - mean) < 4 * std / math.sqrt(num_samples), name
        assert abs(samples.std() - std) < 4 * std / math.sqrt(2 * num_samples), name
        # In natural units the bulk lies in the hand-set range, e.g. rotation within +-15 degrees
        # about 1 - 2 * Phi(-sqrt(3)) ~= 91.7% of the time.
        low, high, log_space = spec.documented_ranges[name]
        natural = np.exp(samples) if log_space else samples
        assert np.mean((natural >= low) & (natural <= high)) == pytest.approx(0.917, abs=0.01), name


def test_every_psi_component_has_bounds_containing_the_default(spec):
    simulator = spec.simulator_class()
    factor_parameters = [f"{name}_{part}" for name in spec.module.FACTOR_NAMES for part in ("mean", "log_scale")]
    assert simulator.parameter_names == ["class_logits", "variant_logits", *factor_parameters]
    assert simulator.unconstrained_vector().size == 10 + spec.num_variants + 2 * len(spec.documented_ranges)
    for name, value in simulator.constrained_parameters().items():
        bounds = simulator.parameter_bounds(name)
        assert bounds is not None, name
        assert np.all((bounds[0] <= value) & (value <= bounds[1])), (name, value, bounds)
    assert spec.simulator_class(tune_class_prior=False).parameter_names[0] == "variant_logits"


def test_random_parameters_give_valid_latents_and_renders(spec):
    simulator = spec.simulator_class()
    rng = np.random.default_rng(0)
    for draw in range(3):
        values = simulator.random_parameters(rng)
        simulator.set_constrained_parameters(values)
        for name, value in simulator.constrained_parameters().items():
            np.testing.assert_allclose(value, values[name], rtol=1e-5, atol=1e-5)
        latents = simulator.sample_latents(spec.num_random_latents, seed=tf.constant([draw, 3]))
        assert np.all(np.isfinite(simulator.log_prob(latents).numpy()))
        images, _ = spec.render_batch(latents)
        assert np.all(np.isfinite(images))
        assert np.all((images >= 0) & (images <= spec.max_value)) and np.all(images == np.round(images))
        if spec.every_random_render_reaches_max_value:
            assert np.all(images.max(axis=(1, 2)) == spec.max_value)


def test_constructor_rejects_a_bad_logit_bound(spec):
    with pytest.raises(ConfigError, match=rf"{spec.simulator_class.__name__}\.logit_bound=0\.0 must be"):
        spec.simulator_class(logit_bound=0.0)


def test_every_class_is_distinguishable_on_fresh_renders(spec, default_renders):
    _, (train_images, train_labels), (fresh_images, fresh_labels) = default_renders
    assert min(collections.Counter(train_labels.tolist()).values()) >= spec.min_train_class_count
    model = classifier().fit(flat(train_images, spec), train_labels)
    predictions = model.predict(flat(fresh_images, spec))
    assert np.mean(predictions == fresh_labels) >= 0.95
    for digit in range(10):  # no class is systematically lost
        assert np.mean(predictions[fresh_labels == digit] == digit) >= 0.85, digit


def test_default_renders_transfer_to_the_real_test_split(spec, default_renders):
    _, (train_images, train_labels), _ = default_renders
    real = spec.real_data()
    model = classifier().fit(flat(train_images, spec), train_labels)
    accuracy = model.score(flat(real.test_inputs, spec), real.test_labels)
    # Far above chance (0.1), far below real-trained models (measured: the `real_data` comments).
    assert accuracy > 0.5
