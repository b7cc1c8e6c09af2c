"""`GaussianMixtureSimulator`: sampling, `log_prob`, rendering, psi handling and constructor checks.

Covers the shapes and dtypes of `sample_latents` under a stateless seed and its
reproducibility, `log_prob` against the closed form `log(1/K) + sum_d log N(x_d; mean_d, s)`,
`render` on single latents, that psi is exactly the `means` variable, the constrained
parameter round trip, the `ConfigError`s of the constructor, and (Monte Carlo, 4 standard
errors) that each component's points are centred on its mean.
"""

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators import GaussianMixtureSimulator
from autosimulate_tf.simulators.gmm import DEFAULT_COMPONENT_CLASSES, DEFAULT_INITIAL_MEANS

SEED = tf.constant([1, 2])
MEANS = np.array(DEFAULT_INITIAL_MEANS, np.float32)


def normal_log_density(x, mean, scale):
    """`log N(x; mean, scale^2)`, elementwise."""
    return -0.5 * np.square((x - mean) / scale) - np.log(scale) - 0.5 * np.log(2.0 * np.pi)


@pytest.mark.parametrize("num_samples", [1, 7, 256])
def test_sample_latents_shapes_and_dtypes(num_samples):
    latents = GaussianMixtureSimulator().sample_latents(num_samples, seed=SEED)
    assert set(latents) == {"component", "point"}
    assert latents["component"].shape == (num_samples,)
    assert latents["component"].dtype == tf.int32
    assert latents["point"].shape == (num_samples, 2)
    assert latents["point"].dtype == tf.float32
    components = latents["component"].numpy()
    assert np.all((components >= 0) & (components < 4))
    assert np.all(np.isfinite(latents["point"].numpy()))


def test_same_seed_gives_identical_samples_and_different_seeds_differ():
    simulator = GaussianMixtureSimulator()
    first = simulator.sample_latents(500, seed=SEED)
    again = GaussianMixtureSimulator().sample_latents(500, seed=tf.constant([1, 2]))
    other = simulator.sample_latents(500, seed=tf.constant([2, 1]))
    for key in ("component", "point"):
        np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
    assert not np.array_equal(first["component"].numpy(), other["component"].numpy())
    assert not np.any(first["point"].numpy() == other["point"].numpy())


def test_log_prob_matches_the_closed_form():
    noise_scale = 0.7
    simulator = GaussianMixtureSimulator(noise_scale=noise_scale)
    latents = simulator.sample_latents(64, seed=SEED)
    log_prob = simulator.log_prob(latents).numpy()
    assert log_prob.shape == (64,)
    assert np.all(np.isfinite(log_prob))
    components = latents["component"].numpy()
    points = latents["point"].numpy()
    expected = np.log(0.25) + normal_log_density(points, MEANS[components], noise_scale).sum(axis=1)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5, atol=1e-5)


def test_log_prob_uses_the_mean_of_the_latent_component_not_another():
    simulator = GaussianMixtureSimulator()
    point = tf.constant([MEANS[2]])  # exactly on component 2's mean
    on_mean = simulator.log_prob({"component": tf.constant([2]), "point": point}).numpy()[0]
    off_mean = simulator.log_prob({"component": tf.constant([1]), "point": point}).numpy()[0]
    assert on_mean == pytest.approx(np.log(0.25) - np.log(2.0 * np.pi), abs=1e-5)
    expected_off = np.log(0.25) + normal_log_density(MEANS[2], MEANS[1], 1.0).sum()
    assert off_mean == pytest.approx(expected_off, abs=1e-4)


def test_log_prob_gradient_in_the_means_is_the_sum_of_residuals():
    simulator = GaussianMixtureSimulator()
    latents = simulator.sample_latents(32, seed=SEED)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(simulator.log_prob(latents))
    (gradient,) = tape.gradient(total, simulator.psi_variables)
    # d/d mean_k sum_i log N(x_i; mean_k, 1) = sum_{i in k} (x_i - mean_k).
    components = latents["component"].numpy()
    points = latents["point"].numpy()
    expected = np.stack([(points[components == k] - MEANS[k]).sum(axis=0) for k in range(4)])
    np.testing.assert_allclose(tf.convert_to_tensor(gradient).numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("component", [0, 1, 2, 3])
def test_render_returns_the_point_and_the_class_of_its_component(component):
    simulator = GaussianMixtureSimulator()
    point = tf.constant([0.25 + component, -3.5], tf.float32)
    observation, label = simulator.render({"component": tf.constant(component), "point": point})
    np.testing.assert_array_equal(observation.numpy(), point.numpy())
    assert int(label) == DEFAULT_COMPONENT_CLASSES[component]


def test_render_uses_custom_component_classes():
    simulator = GaussianMixtureSimulator(component_classes=(1, 0, 0, 1))
    labels = [int(simulator.render({"component": tf.constant(k), "point": tf.zeros([2])})[1]) for k in range(4)]
    assert labels == [1, 0, 0, 1]


def test_psi_variables_is_exactly_the_means_variable():
    simulator = GaussianMixtureSimulator()
    assert simulator.parameter_names == ["means"]
    (variable,) = simulator.psi_variables
    assert variable.shape == (4, 2)
    np.testing.assert_array_equal(variable.numpy(), MEANS)  # identity bijector: unconstrained == constrained
    assert [v.ref() for v in simulator.trainable_variables] == [variable.ref()]
    assert simulator.parameter_bounds("means") == (-4.0, 4.0)


def test_constrained_parameters_round_trip():
    simulator = GaussianMixtureSimulator()
    np.testing.assert_array_equal(simulator.constrained_parameters()["means"], MEANS)
    new_means = np.array([[2.0, 2.0], [-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0]], np.float32)
    simulator.set_constrained_parameters({"means": new_means})
    np.testing.assert_array_equal(simulator.constrained_parameters()["means"], new_means)
    np.testing.assert_array_equal(simulator.psi_variables[0].numpy(), new_means)
    # The distribution follows the new psi: a point on a new mean has the peak density.
    on_mean = simulator.log_prob({"component": tf.constant([3]), "point": tf.constant([[-2.0, 2.0]])})
    assert float(on_mean[0]) == pytest.approx(np.log(0.25) - np.log(2.0 * np.pi), abs=1e-5)
    with pytest.raises(KeyError, match="mean"):
        simulator.set_constrained_parameters({"mean": new_means})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_means": ((0.0, 1.0, 2.0), (1.0, 2.0, 3.0))}, r"initial_means must have shape \[components, 2\]"),
        ({"initial_means": (0.0, 1.0)}, r"initial_means must have shape \[components, 2\]"),
        ({"component_classes": (0, 1, 1)}, "component_classes has 3 entries for 4 means"),
        ({"noise_scale": 0.0}, "noise_scale=0.0 must be a finite number > 0"),
        ({"noise_scale": -1.0}, "noise_scale=-1.0 must be a finite number > 0"),
        (
            {"initial_means": ((np.nan, 0.0), (1.0, 1.0)), "component_classes": (0, 1)},
            r"GaussianMixtureSimulator psi parameter 'means': .* not finite",
        ),
        ({"mean_bound": 0.0}, r"GaussianMixtureSimulator\.mean_bound=0\.0 must be a finite number > 0"),
        ({"mean_bound": float("inf")}, r"GaussianMixtureSimulator\.mean_bound=inf must be a finite number > 0"),
    ],
)
def test_constructor_rejects_bad_arguments_with_a_helpful_message(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GaussianMixtureSimulator(**kwargs)


@pytest.mark.parametrize("noise_scale", [float("nan"), float("inf")])
def test_constructor_rejects_non_finite_noise_scale(noise_scale):
    with pytest.raises(ConfigError, match=r"GaussianMixtureSimulator\.noise_scale="):
        GaussianMixtureSimulator(noise_scale=noise_scale)


def test_constructor_rejects_component_classes_outside_the_classes():
    with pytest.raises(ConfigError, match=r"GaussianMixtureSimulator\.component_classes="):
        GaussianMixtureSimulator(component_classes=(0, 1, 2, 3))


def test_points_of_each_component_are_centred_on_its_mean():
    num_samples, noise_scale = 20_000, 0.5
    simulator = GaussianMixtureSimulator(noise_scale=noise_scale)
    latents = simulator.sample_latents(num_samples, seed=tf.constant([3, 4]))
    components = latents["component"].numpy()
    points = latents["point"].numpy()
    for k in range(4):
        members = points[components == k]
        # Uniform components: each count is Binomial(n, 1/4).
        count_se = np.sqrt(num_samples * 0.25 * 0.75)
        assert abs(len(members) - num_samples / 4) < 4 * count_se, (k, len(members))
        standard_error = noise_scale / np.sqrt(len(members))
        np.testing.assert_array_less(np.abs(members.mean(axis=0) - MEANS[k]), 4 * standard_error)
        np.testing.assert_allclose(members.std(axis=0), noise_scale, rtol=0.05)
