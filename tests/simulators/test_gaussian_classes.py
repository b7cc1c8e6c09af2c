"""`GaussianClassesSimulator` and its real data (`gaussian_classes_real_data`): the psi-dimension benchmark.

Covers the shapes and reproducibility of `sample_latents`, `log_prob` against the closed form,
that psi has exactly `dimension` components inside the search box, (Monte Carlo, 4 standard
errors) that each class is centred on `+-separation / 2`, the hidden separation's construction
(norm, balanced signs, no component near zero, orthogonal to the default), that the default
is far worse than the hidden separation at every benchmark dimension (the Bayes rule of each
on the real data, and a fresh model trained on renders), the real data fixed by its seed with
disjoint splits, and the constructors' `ConfigError`s.
"""

import functools

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.data import gaussian_classes_real_data
from autosimulate_tf.data.gaussian_classes import (
    SEPARATION_NORM,
    bayes_accuracy,
    hidden_separation,
    uniform_separation,
)
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.models.factories import mlp
from autosimulate_tf.problem import Problem
from autosimulate_tf.simulators import GaussianClassesSimulator
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator

SEED = tf.constant([4, 2])
BENCHMARK_DIMENSIONS = (2, 8, 32, 128)


@pytest.mark.parametrize("dimension", [2, 8, 128])
def test_sample_latents_shapes_and_dtypes(dimension):
    simulator = GaussianClassesSimulator(dimension=dimension)
    latents = simulator.sample_latents(64, seed=SEED)
    assert set(latents) == {"label", "point"}
    assert latents["label"].shape == (64,) and latents["label"].dtype == tf.int32
    assert latents["point"].shape == (64, dimension) and latents["point"].dtype == tf.float32
    assert set(np.unique(latents["label"].numpy())) <= {0, 1}
    observation, label = simulator.render({"point": latents["point"][0], "label": latents["label"][0]})
    assert tuple(observation.shape) == simulator.observation_shape == (dimension,)
    assert label.shape == ()


def test_same_seed_gives_identical_samples_and_different_seeds_differ():
    first = GaussianClassesSimulator(dimension=8).sample_latents(200, seed=SEED)
    again = GaussianClassesSimulator(dimension=8).sample_latents(200, seed=tf.constant([4, 2]))
    other = GaussianClassesSimulator(dimension=8).sample_latents(200, seed=tf.constant([2, 4]))
    for key in ("label", "point"):
        np.testing.assert_array_equal(first[key].numpy(), again[key].numpy())
    assert not np.any(first["point"].numpy() == other["point"].numpy())


@pytest.mark.parametrize("dimension", BENCHMARK_DIMENSIONS)
def test_psi_has_exactly_dimension_components_in_the_search_box(dimension):
    simulator = GaussianClassesSimulator(dimension=dimension, separation_bound=2.5)
    assert simulator.parameter_names == ["separation"]
    assert simulator.unconstrained_vector().shape == (dimension,)
    assert simulator.search_space() == {"separation": ("box", (dimension,), -2.5, 2.5)}
    np.testing.assert_allclose(simulator.constrained_parameters()["separation"], uniform_separation(dimension))


def test_log_prob_matches_the_closed_form():
    separation = np.linspace(-1.0, 1.0, 6).astype(np.float32)
    simulator = GaussianClassesSimulator(dimension=6, initial_separation=separation, noise_scale=0.7)
    latents = simulator.sample_latents(32, seed=SEED)
    signs = 2.0 * latents["label"].numpy()[:, None] - 1.0
    residual = (latents["point"].numpy() - signs * separation / 2.0) / 0.7
    expected = np.log(0.5) - 0.5 * np.square(residual).sum(1) - 6 * (np.log(0.7) + 0.5 * np.log(2.0 * np.pi))
    np.testing.assert_allclose(simulator.log_prob(latents).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_each_class_is_centred_on_half_the_separation():
    separation = hidden_separation(8)
    simulator = GaussianClassesSimulator(dimension=8, initial_separation=separation)
    latents = simulator.sample_latents(4000, seed=SEED)
    labels, points = latents["label"].numpy(), latents["point"].numpy()
    for label, sign in ((0, -1.0), (1, 1.0)):
        members = points[labels == label]
        tolerance = 4.0 / np.sqrt(len(members))  # unit noise: 4 standard errors of each coordinate's mean
        np.testing.assert_allclose(members.mean(0), sign * separation / 2.0, atol=tolerance)


@pytest.mark.parametrize("dimension", BENCHMARK_DIMENSIONS)
def test_hidden_separation_needs_every_component_and_is_orthogonal_to_the_default(dimension):
    separation = hidden_separation(dimension)
    np.testing.assert_array_equal(separation, hidden_separation(dimension))
    assert np.linalg.norm(separation) == pytest.approx(SEPARATION_NORM, rel=1e-5)
    assert float(separation @ uniform_separation(dimension)) == pytest.approx(0.0, abs=1e-4)
    assert np.sum(separation > 0) == dimension // 2 and np.sum(separation < 0) == dimension // 2
    # No component is close to zero: each one moves the boundary.
    assert np.abs(separation).min() > 0.25 * SEPARATION_NORM / np.sqrt(dimension)
    if dimension > 2:  # in 2 inputs the construction leaves only +-(1, -1) * norm / sqrt(2)
        assert not np.array_equal(hidden_separation(dimension, seed=1), separation)


def rule_accuracy(direction, inputs, labels) -> float:
    """Accuracy on `(inputs, labels)` of the boundary `direction . x = 0` that renders of `direction` teach."""
    return float(np.mean((inputs @ direction > 0) == (labels == 1)))


@pytest.mark.parametrize("dimension", BENCHMARK_DIMENSIONS)
def test_the_default_splits_the_real_classes_at_chance_and_the_hidden_separation_near_bayes(dimension):
    real = gaussian_classes_real_data(dimension=dimension, num_test=20000)
    default = rule_accuracy(uniform_separation(dimension), real.test_inputs, real.test_labels)
    hidden = rule_accuracy(hidden_separation(dimension), real.test_inputs, real.test_labels)
    standard_error = np.sqrt(0.25 / real.test_labels.size)
    assert abs(default - 0.5) < 4 * standard_error
    assert abs(hidden - bayes_accuracy()) < 4 * standard_error


def test_a_model_trained_on_the_default_renders_is_far_worse_than_on_the_hidden_separation():
    dimension = 128  # the hardest case: 129 weights per class from 1,000 renders
    problem = Problem(
        simulator=GaussianClassesSimulator(dimension=dimension),
        real_data=gaussian_classes_real_data(dimension=dimension),
        model_fn=functools.partial(mlp, hidden_units=()),
    )
    evaluator = ScratchTrainingEvaluator(problem, num_samples=1000, num_steps=100, learning_rate=0.05)
    default = evaluator.evaluate(seed=0)["val_accuracy"]
    with problem.simulator.temporary_psi(constrained={"separation": hidden_separation(dimension)}):
        hidden = evaluator.evaluate(seed=0)["val_accuracy"]
    assert default < 0.65 and hidden > 0.85, (default, hidden)


def test_real_data_is_fixed_by_its_seed_and_its_splits_are_disjoint():
    real = gaussian_classes_real_data(dimension=8, num_validation=300, num_test=700)
    again = gaussian_classes_real_data(dimension=8, num_validation=300, num_test=700)
    other = gaussian_classes_real_data(dimension=8, num_validation=300, num_test=700, seed=7)
    for field, value in real._asdict().items():
        np.testing.assert_array_equal(value, getattr(again, field), err_msg=field)
    assert not np.array_equal(real.validation_inputs, other.validation_inputs)
    assert real.validation_inputs.shape == (300, 8) and real.test_inputs.shape == (700, 8)
    assert real.validation_inputs.dtype == np.float32 and real.validation_labels.dtype == np.int32
    validation_rows = {row.tobytes() for row in real.validation_inputs}
    assert not validation_rows & {row.tobytes() for row in real.test_inputs}
    assert 0.4 < real.test_labels.mean() < 0.6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dimension": 1}, r"GaussianClassesSimulator\.dimension=1"),
        ({"dimension": 4, "initial_separation": [1.0, 2.0]}, r"initial_separation must have shape \(4,\)"),
        ({"dimension": 2, "initial_separation": [5.0, 0.0]}, r"inside \[-separation_bound, separation_bound\]"),
        ({"dimension": 2, "noise_scale": 0.0}, r"noise_scale=0\.0"),
        ({"dimension": 2, "separation_bound": -1.0}, r"separation_bound=-1\.0"),
    ],
)
def test_bad_simulator_arguments_raise_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GaussianClassesSimulator(**kwargs)


def test_bad_real_data_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match=r"gaussian_classes_real_data\.dimension=0"):
        gaussian_classes_real_data(dimension=0)
    with pytest.raises(ConfigError, match=r"num_validation=0"):
        gaussian_classes_real_data(num_validation=0)
