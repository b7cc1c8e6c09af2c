"""benchmarks/hypergradient_agreement.py's helpers and the held-psi recording, against known answers."""

import numpy as np
import pytest
import tensorflow as tf

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
