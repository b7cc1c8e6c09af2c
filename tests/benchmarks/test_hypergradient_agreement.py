"""benchmarks/hypergradient_agreement.py's helpers and the held-psi recording, against known answers."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf import configs
from autosimulate_tf.data.real import XOR_MEANS
from autosimulate_tf.problem import Problem
from autosimulate_tf.simulators.mnist_digits import MnistDigitsSimulator


@pytest.fixture(scope="module")
def agreement(benchmark_module):
    return benchmark_module("hypergradient_agreement")


def test_component_index_counts_the_numbers_of_the_variables_before_it(agreement):
    simulator = MnistDigitsSimulator(tune_class_prior=False)
    # Without the class prior, psi starts with the 25 variant logits, then the factors in order.
    assert simulator.parameter_names[0] == "variant_logits"
    first_factor = simulator.parameter_names[1]
    assert agreement.component_index(simulator, first_factor) == 25
    assert agreement.component_index(simulator, simulator.parameter_names[2]) == 26
    with pytest.raises(ValueError, match="only scalar"):
        agreement.component_index(simulator, "variant_logits")
    with pytest.raises(ValueError, match="unknown psi component 'no_such_factor'"):
        agreement.component_index(simulator, "no_such_factor")


def test_mean_and_standard_error_of_known_values(agreement):
    mean, standard_error = agreement.mean_and_standard_error([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert standard_error == pytest.approx(np.sqrt(5.0 / 3.0) / 2.0)  # std (ddof 1) sqrt(5/3), n = 4


def test_directions_follow_descent_and_ignore_what_noise_could_explain(agreement):
    # A positive mean derivative of the validation loss: a descent step lowers the factor.
    assert agreement.hypergradient_direction(0.1, 0.01) == -1
    assert agreement.hypergradient_direction(-0.1, 0.01) == 1
    assert agreement.hypergradient_direction(0.015, 0.01) is None  # within two standard errors
    assert agreement.fresh_direction([1.0, 1.2], [0.8, 1.1]) == 1  # lower loss on every seed
    assert agreement.fresh_direction([1.0, 1.2], [1.1, 1.3]) == -1
    assert agreement.fresh_direction([1.0, 1.2], [0.9, 1.3]) is None
    # The accuracy verdict: higher accuracy on every seed moves the factor up.
    assert agreement.fresh_accuracy_direction([0.80, 0.82], [0.83, 0.84]) == 1
    assert agreement.fresh_accuracy_direction([0.80, 0.82], [0.78, 0.81]) == -1
    assert agreement.fresh_accuracy_direction([0.80, 0.82], [0.83, 0.81]) is None


def _short_gmm_run(recording, hold_psi: bool) -> dict:
    tf.config.run_functions_eagerly(True)
    try:
        return recording.record_run(
            ["AutoSimulateTrainer.num_initial_inner_steps = 5", "AutoSimulateTrainer.num_inner_steps = 2"],
            seed=0,
            num_iterations=3,
            gin_file="toy_gmm.gin",
            hold_psi=hold_psi,
        )
    finally:
        tf.config.run_functions_eagerly(False)


def test_hold_psi_keeps_psi_exactly_at_its_start_while_every_estimate_is_recorded(benchmark_module):
    recording = benchmark_module("hypergradient_recording")
    held = _short_gmm_run(recording, hold_psi=True)
    assert held["gradients"].shape[0] == 3  # one estimate per outer iteration
    assert np.all(np.isfinite(held["gradients"])) and np.any(held["gradients"] != 0)
    for name, value in held["initial_psi"].items():
        np.testing.assert_array_equal(held["final_psi"][name], value, err_msg=name)
    moving = _short_gmm_run(recording, hold_psi=False)
    assert any(not np.array_equal(moving["final_psi"][k], v) for k, v in moving["initial_psi"].items())


def test_component_labels_name_every_number_of_the_flattened_psi(agreement):
    simulator = MnistDigitsSimulator(tune_class_prior=False)
    labels = agreement.component_labels(simulator)
    total = sum(int(np.prod(v.shape)) for v in simulator.psi_variables)
    assert len(labels) == total
    assert labels[:2] == ["variant_logits[0]", "variant_logits[1]"]
    assert labels[25] == simulator.parameter_names[1]
    assert agreement.component_index(simulator, labels[25]) == 25


def test_centred_psi_ignores_a_shift_of_the_logits_and_restores_psi(agreement):
    simulator = MnistDigitsSimulator(tune_class_prior=False)
    before = [v.numpy().copy() for v in simulator.psi_variables]
    constrained = simulator.constrained_parameters()
    shifted = dict(constrained, variant_logits=constrained["variant_logits"] + 2.0)
    np.testing.assert_allclose(
        agreement.centred_unconstrained_psi(simulator, shifted),
        agreement.centred_unconstrained_psi(simulator, constrained),
        atol=1e-5,
    )
    moved = dict(constrained, variant_logits=np.arange(25, dtype=np.float32))
    logits = agreement.centred_unconstrained_psi(simulator, moved)[:25]
    assert abs(logits.mean()) < 1e-4 and logits[-1] > logits[0]
    for variable, value in zip(simulator.psi_variables, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_alignment_of_the_descent_direction_with_a_known_step(agreement):
    # Four estimates of a 3-component gradient: component 0 is clearly positive (descent lowers
    # it), component 1 clearly negative (descent raises it), component 2 is noise around 0.
    gradients = np.array([[1.0, -2.0, 0.5], [1.2, -1.8, -0.5], [0.8, -2.2, 0.4], [1.0, -2.0, -0.4]])
    change = np.array([-1.0, -1.0, 3.0])  # toward for component 0, away for 1, 2 undecided
    result = agreement.alignment(change, gradients, ["a", "b", "c"])
    assert (result["toward"], result["away"], result["undecided"]) == (1, 1, 1)
    descent = -gradients.mean(axis=0)
    expected = descent @ change / (np.linalg.norm(descent) * np.linalg.norm(change))
    assert result["cosine"] == pytest.approx(expected)
    assert result["components"]["a"]["direction"] == -1 and result["components"]["c"]["direction"] is None
    assert agreement.alignment(np.zeros(3), gradients, ["a", "b", "c"])["cosine"] is None


def test_line_scores_run_from_the_start_to_the_better_psi_and_restore_psi(agreement):
    """On the GMM toy, the line from the initial means to the XOR layout ends where the XOR layout scores."""
    gin.clear_config()
    configs.parse_gin(
        ["toy_gmm.gin"],
        [
            "selection/ScratchTrainingEvaluator.num_samples = 200",
            "selection/ScratchTrainingEvaluator.num_steps = 200",
            "selection/ScratchTrainingEvaluator.learning_rate = 0.01",
        ],
    )
    problem = Problem()
    simulator = problem.simulator
    initial = simulator.constrained_parameters()
    start = agreement.centred_unconstrained_psi(simulator, initial)
    change = agreement.centred_unconstrained_psi(simulator, {"means": XOR_MEANS}) - start
    line = agreement.line_scores(problem, start, change, [0.0, 1.0], seeds=[0])
    ends = agreement.fresh_scores(problem, {"start": {}, "xor": {"means": XOR_MEANS}}, seeds=[0])
    assert line["0.0"]["val_accuracy"] == ends["start"]["val_accuracy"]
    assert line["1.0"]["val_accuracy"] == ends["xor"]["val_accuracy"]
    assert line["0.0"]["val_accuracy"][0] < 0.7 < 0.85 < line["1.0"]["val_accuracy"][0]
    np.testing.assert_array_equal(simulator.constrained_parameters()["means"], initial["means"])


def test_step_mask_keeps_the_named_variables_and_names_an_unknown_one(agreement):
    simulator = MnistDigitsSimulator(tune_class_prior=False)
    labels = agreement.component_labels(simulator)
    everything = agreement.step_mask(simulator, [])
    assert everything.shape == (len(labels),) and np.all(everything == 1)
    logits_only = agreement.step_mask(simulator, ["variant_logits"])
    assert logits_only[:25].tolist() == [1.0] * 25 and not np.any(logits_only[25:])
    with pytest.raises(ValueError, match="unknown psi variables \\['no_such_variable'\\]"):
        agreement.step_mask(simulator, ["no_such_variable"])
