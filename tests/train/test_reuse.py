"""Reusing the renders of earlier outer iterations (`AutoSimulateTrainer.reuse_iterations`)."""

import gin
import numpy as np
import pytest

from autosimulate_tf import configs
from autosimulate_tf.train import train_autosimulate

TINY = [
    "AutoSimulateTrainer.num_samples = 10",
    "AutoSimulateTrainer.num_initial_inner_steps = 20",
    "AutoSimulateTrainer.num_inner_steps = 5",
    "train_autosimulate.log_interval = 1000",
]


def run(root_dir, bindings, history=None):
    gin.clear_config()
    configs.parse_gin(["toy_gmm.gin"], TINY + bindings)
    return train_autosimulate(root_dir=str(root_dir), history=history)


def test_reuse_counts_only_new_renders_and_weights_stay_proper(tmp_path):
    history = []
    results = run(
        tmp_path, ["AutoSimulateTrainer.reuse_iterations = 3", "train_autosimulate.num_outer_iterations = 6"], history
    )
    assert results["simulated_samples"] == 6 * 10  # reused renders are not rendered (or counted) again
    fractions = [m["reuse_effective_sample_fraction"] for m in history]
    assert fractions[0] == pytest.approx(1.0)  # iteration 1: only fresh samples, all weights 1
    assert all(0.0 < fraction <= 1.0 + 1e-6 for fraction in fractions)
    assert min(fractions[1:]) < 1.0 - 1e-6  # psi moved, so the reused samples are reweighted
    assert all(np.isfinite(m["hypergradient_norm"]) for m in history)


def test_growing_reuse_dataset_is_traced_once():
    """D_t grows from N to (W + 1) N; inner training and the hypergradient must not retrace per size."""
    from autosimulate_tf.train import AutoSimulateTrainer

    gin.clear_config()
    configs.parse_gin(["toy_gmm.gin"], TINY + ["AutoSimulateTrainer.reuse_iterations = 3"])
    trainer = AutoSimulateTrainer()
    for _ in range(5):  # D_t: 10, 20, 30, 40, 40 samples
        trainer.step()
    assert trainer._inner_train_fn.experimental_get_tracing_count() == 1
    assert trainer._hypergradient_fn.experimental_get_tracing_count() == 1


def test_reuse_changes_the_trajectory(tmp_path):
    """The reused samples do reach the estimator: same seeds, different psi after a few iterations."""
    bindings = ["train_autosimulate.num_outer_iterations = 4"]
    without = run(tmp_path / "without", bindings)
    with_reuse = run(tmp_path / "with", [*bindings, "AutoSimulateTrainer.reuse_iterations = 3"])
    assert without["simulated_samples"] == with_reuse["simulated_samples"]
    assert not np.allclose(without["final_psi"]["means"], with_reuse["final_psi"]["means"])


def test_restart_with_reuse_ends_like_an_uninterrupted_run(tmp_path):
    """The reuse buffer is part of the checkpoint, so a resumed run sees the same reused samples."""
    bindings = [
        "AutoSimulateTrainer.reuse_iterations = 3",
        "train_autosimulate.num_outer_iterations = 8",
        "train_autosimulate.checkpoint_interval = 4",
    ]
    uninterrupted = run(tmp_path / "uninterrupted", bindings)
    run(tmp_path / "interrupted", [*bindings, "train_autosimulate.num_outer_iterations = 4"])
    resumed = run(tmp_path / "interrupted", bindings)
    # Bit-identical when run alone; once, under heavy concurrent load, three entries differed in
    # the last bit (1.2e-7), hence a float32-rounding tolerance. A lost or wrong buffer moves psi
    # by orders of magnitude more (checked against a run without reuse below).
    np.testing.assert_allclose(resumed["final_psi"]["means"], uninterrupted["final_psi"]["means"], rtol=1e-6, atol=1e-6)
    without_reuse = run(tmp_path / "without", [b for b in bindings if "reuse" not in b])
    assert np.max(np.abs(np.subtract(without_reuse["final_psi"]["means"], uninterrupted["final_psi"]["means"]))) > 1e-3


def test_negative_reuse_is_rejected_naming_the_setting(tmp_path):
    with pytest.raises(ValueError, match=r"AutoSimulateTrainer\.reuse_iterations=-1"):
        run(tmp_path, ["AutoSimulateTrainer.reuse_iterations = -1"])


def test_train_loss_with_example_weights_weights_each_example_and_reduces_to_the_plain_loss():
    import tensorflow as tf

    from autosimulate_tf.hypergrad import TaskObjective
    from autosimulate_tf.models import mlp

    objective = TaskObjective(mlp(input_shape=(2,), num_outputs=2, dtype="float64"), "softmax_cross_entropy", 1e-2)
    weights = objective.current_weights()
    inputs = tf.constant(np.random.default_rng(0).normal(size=(6, 2)))
    labels = tf.constant([0, 1, 1, 0, 1, 0])
    ones = tf.ones([6], tf.float64)
    np.testing.assert_allclose(
        objective.train_loss(weights, inputs, labels, ones), objective.train_loss(weights, inputs, labels)
    )
    example_weights = tf.constant([0.0, 3.0, 0.5, 0.5, 2.0, 0.0], tf.float64)
    per_example = objective.per_example_losses(weights, inputs, labels).numpy()
    expected = np.mean(example_weights.numpy() * per_example) + objective.weight_decay_term(weights).numpy()
    np.testing.assert_allclose(objective.train_loss(weights, inputs, labels, example_weights), expected)
    # Through the (single-device) sharded path the per-example weights travel with their examples.
    value, _ = objective.mean_value_and_gradient(objective.train_loss, weights, inputs, labels, example_weights)
    np.testing.assert_allclose(value, expected)
