"""Reliability of the outer loop: faulty simulators, numerical guards, determinism (in-process)."""

import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf import configs
from autosimulate_tf import results_schema as schema
from autosimulate_tf.data.real import xor_mixture_real_data
from autosimulate_tf.models import mlp
from autosimulate_tf.problem import Problem
from autosimulate_tf.simulators import GaussianMixtureSimulator
from autosimulate_tf.simulators.faults import FaultInjectingSimulator
from autosimulate_tf.train import AutoSimulateTrainer, train_autosimulate
from autosimulate_tf.train.trainer import SimulatorFailureError

SMALL = [
    "train_autosimulate.log_interval = 1000",
    "NUM_SAMPLES = 60",
    "AutoSimulateTrainer.num_initial_inner_steps = 20",
    "NUM_INNER_STEPS = 5",
]


def run(root_dir, bindings, history=None):
    gin.clear_config()
    configs.parse_gin(["toy_gmm.gin"], SMALL + list(bindings))
    return train_autosimulate(root_dir=str(root_dir), history=history)


def faulty(**rates):
    bindings = [
        "FaultInjectingSimulator.simulator = @GaussianMixtureSimulator()",
        "Problem.simulator = @FaultInjectingSimulator()",
    ]
    return bindings + [f"FaultInjectingSimulator.{name} = {value}" for name, value in rates.items()]


def test_faulty_renders_are_dropped_counted_and_the_run_goes_on(tmp_path):
    history = []
    results = run(
        tmp_path,
        faulty(raise_rate=0.05, nan_rate=0.05, inf_rate=0.03, wrong_shape_rate=0.05)
        + ["train_autosimulate.num_outer_iterations = 4"],
        history,
    )
    assert results["outer_iterations"] == 4
    # 18% of 240 renders are faulty in expectation; binomial 4-sigma band.
    expected, sigma = 0.18 * 240, np.sqrt(240 * 0.18 * 0.82)
    assert abs(results["dropped_samples"] - expected) < 4 * sigma
    assert results["dropped_samples"] == sum(metrics["num_dropped"] for metrics in history)
    assert results["skipped_updates"] == 0
    assert all(np.all(np.isfinite(np.array(value))) for value in results["final_psi"].values())


def test_dropped_samples_leave_the_score_term_too():
    """The hypergradient on the kept samples equals the one computed on only the good latents."""
    gin.clear_config()
    wrapped = GaussianMixtureSimulator()
    simulator = FaultInjectingSimulator(simulator=wrapped, raise_rate=0.2, nan_rate=0.1)
    trainer = AutoSimulateTrainer(
        problem=Problem(simulator=simulator, real_data=xor_mixture_real_data(), model_fn=mlp),
        num_samples=80,
        num_initial_inner_steps=5,
        seed=3,
    )
    metrics = trainer.step()
    assert metrics["num_dropped"] > 0
    assert np.isfinite(metrics["hypergradient_norm"]) and metrics["hypergradient_norm"] > 0


def test_failure_rate_above_the_limit_stops_with_a_checkpoint(tmp_path):
    with pytest.raises(SimulatorFailureError, match=r"max_failure_rate=0\.3") as raised:
        run(tmp_path, faulty(raise_rate=0.6) + ["AutoSimulateTrainer.max_failure_rate = 0.3"])
    assert "Last good state saved" in str(raised.value)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) is not None


def test_a_hanging_render_times_out_and_is_dropped(tmp_path):
    results = run(
        tmp_path,
        faulty(hang_rate=0.05, hang_s=30.0)
        + ["AutoSimulateTrainer.render_timeout_s = 0.5", "train_autosimulate.num_outer_iterations = 2"],
    )
    assert results["dropped_samples"] > 0
    # Hangs of 30 s each cannot have been waited for.
    assert results["wall_clock_s"] < 30


def test_broken_simulator_fails_before_training_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"FaultInjectingSimulator\.render returned observation shape"):
        run(tmp_path, faulty(wrong_shape_rate=1.0))
    assert not os.path.exists(tmp_path / "checkpoints")


def test_non_finite_validation_gradient_skips_psi_updates_and_keeps_everything_finite(tmp_path):
    gin.clear_config()
    real = xor_mixture_real_data(num_validation=50, num_test=50)
    poisoned = real._replace(validation_inputs=np.where(np.arange(50)[:, None] == 7, np.nan, real.validation_inputs))
    simulator = GaussianMixtureSimulator()
    initial = simulator.constrained_parameters()["means"].copy()
    trainer = AutoSimulateTrainer(
        problem=Problem(simulator=simulator, real_data=poisoned, model_fn=mlp),
        num_samples=50,
        num_initial_inner_steps=5,
        num_inner_steps=5,
    )
    for _ in range(3):
        metrics = trainer.step()
        assert metrics["update_skipped"]
    assert metrics["skipped_updates"] == 3
    np.testing.assert_array_equal(simulator.constrained_parameters()["means"], initial)
    assert all(np.all(np.isfinite(v.numpy())) for v in trainer.model.trainable_variables)
    assert all(np.all(np.isfinite(v.numpy())) for v in trainer.previous_z)


def log_activation_model(input_shape, num_outputs, seed):
    """A model whose hidden layer takes a log: negative pre-activations give NaN losses and gradients."""
    import keras

    return keras.Sequential(
        [
            keras.Input(tuple(input_shape)),
            keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(seed=seed)),
            keras.layers.Lambda(keras.ops.log),
            keras.layers.Dense(num_outputs),
        ]
    )


def test_non_finite_inner_gradients_never_reach_theta():
    trainer = AutoSimulateTrainer(
        problem=Problem(
            simulator=GaussianMixtureSimulator(),
            real_data=xor_mixture_real_data(num_test=50),
            model_fn=log_activation_model,
        ),
        num_samples=50,
        num_initial_inner_steps=10,
    )
    before = [v.numpy().copy() for v in trainer.model.trainable_variables]
    metrics = trainer.step()
    assert metrics["nonfinite_inner_gradients"] == 10
    assert metrics["update_skipped"]
    for variable, initial in zip(trainer.model.trainable_variables, before, strict=True):
        assert np.all(np.isfinite(variable.numpy()))
        np.testing.assert_array_equal(variable.numpy(), initial)
    assert all(np.all(np.isfinite(v.numpy())) for v in trainer.simulator.psi_variables)


def test_two_runs_with_the_same_seed_give_identical_results(tmp_path):
    bindings = ["train_autosimulate.num_outer_iterations = 5"]
    first = run(tmp_path / "a", bindings)
    second = run(tmp_path / "b", bindings)
    for clock in schema.CLOCKS:  # the only entries that may differ between two identical runs
        first.pop(clock)
        second.pop(clock)
    assert first == second
    other_seed = run(tmp_path / "c", [*bindings, "SEED = 1"])
    assert other_seed["final_psi"] != first["final_psi"]


def test_a_psi_update_that_overflows_is_undone():
    """A finite hypergradient whose step makes psi infinite: psi keeps its last value."""
    import keras

    trainer = AutoSimulateTrainer(
        problem=Problem(
            simulator=GaussianMixtureSimulator(),
            real_data=xor_mixture_real_data(num_validation=50, num_test=50),
            model_fn=mlp,
        ),
        num_samples=20,
        outer_optimizer=lambda: keras.optimizers.SGD(10.0),
    )
    before = [v.numpy().copy() for v in trainer.simulator.psi_variables]
    huge = [tf.fill(v.shape, -3e38) for v in trainer.simulator.psi_variables]  # 10 * 3e38 overflows float32
    assert not trainer.apply_psi_update(huge)
    for variable, value in zip(trainer.simulator.psi_variables, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    small = [tf.fill(v.shape, 0.01) for v in trainer.simulator.psi_variables]
    assert trainer.apply_psi_update(small)
    for variable, value in zip(trainer.simulator.psi_variables, before, strict=True):
        np.testing.assert_allclose(variable.numpy(), value - 0.1, rtol=1e-6)
