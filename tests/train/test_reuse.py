"""Reusing the renders of earlier outer iterations (`AutoSimulateTrainer.reuse_iterations`)."""

import gin
import numpy as np
import pytest

from autosimulate_tf import configs
from autosimulate_tf.problem import Problem
from autosimulate_tf.simulators import GaussianMixtureSimulator
from autosimulate_tf.train import train_autosimulate
from autosimulate_tf.train.reuse import ReuseBuffer

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
    trainer = AutoSimulateTrainer(problem=Problem())
    for _ in range(5):  # D_t: 10, 20, 30, 40, 40 samples
        trainer.step()
    assert trainer.tracing_counts() == {"inner_training": 1, "hypergradient": 1}


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


class _Holder:
    """What the tests below read: the simulator and the buffer under test."""

    def __init__(self, simulator, buffer):
        self.simulator = simulator
        self.buffer = buffer


def _trainer_with_reuse(weighting="per_sample"):
    """A GMM simulator and a 2-slot `ReuseBuffer` of 10 samples, as a trainer with reuse builds it."""
    import tensorflow as tf

    simulator = GaussianMixtureSimulator()
    return _Holder(simulator, ReuseBuffer(simulator, 2, 10, tf.float32, weighting))


def _reuse_three_iterations(holder, psi_per_iteration):
    """Feeds three iterations of fresh latents, each drawn under its own psi; returns the third call's output."""
    import tensorflow as tf

    simulator = holder.simulator
    combine = tf.function(holder.buffer.combine)  # compiled, as the trainer runs it
    all_latents = []
    for iteration, means in enumerate(psi_per_iteration):
        simulator.set_constrained_parameters({"means": np.asarray(means, np.float32)})
        latents = simulator.sample_latents(10, seed=tf.constant([7, iteration]))
        all_latents.append(latents)
        inputs = tf.zeros([10, 2], tf.float32)
        labels = tf.zeros([10], tf.as_dtype(simulator.label_dtype))
        output = combine(inputs, labels, latents, tf.constant(iteration, tf.int64))
    return all_latents, output


PSI_PER_ITERATION = [
    [[-1.5, 1.0], [1.5, 1.2], [-1.4, -1.1], [1.6, -0.9]],
    [[-1.0, 1.5], [1.5, 1.2], [-1.4, -0.5], [1.6, -0.9]],
    [[-0.5, 2.0], [2.0, 1.5], [-1.0, 0.5], [2.0, -1.5]],
]


def test_mixture_weights_are_the_balance_heuristic_and_psi_is_restored():
    """`reuse_weighting = 'mixture'`: r(c) = p(c | psi_t) / sum_k (n_k / n) p(c | psi_k), scaled to mean 1."""
    import tensorflow as tf

    trainer = _trainer_with_reuse("mixture")
    all_latents, (_, _, combined_latents, weights) = _reuse_three_iterations(trainer, PSI_PER_ITERATION)
    # The psi of the third iteration is still in place after the swaps inside the call.
    np.testing.assert_allclose(trainer.simulator.constrained_parameters()["means"], PSI_PER_ITERATION[2], atol=1e-6)

    latents = tf.nest.map_structure(lambda *parts: tf.concat(parts, axis=0), *all_latents)
    for got, expected in zip(tf.nest.flatten(combined_latents), tf.nest.flatten(latents), strict=True):
        np.testing.assert_array_equal(got, expected)  # oldest first, all 30 kept
    log_p = []
    for means in PSI_PER_ITERATION:
        trainer.simulator.set_constrained_parameters({"means": np.asarray(means, np.float32)})
        log_p.append(trainer.simulator.log_prob(latents).numpy().astype(np.float64))
    log_p = np.stack(log_p)  # [psi, sample]
    log_q = np.logaddexp.reduce(np.log(10.0) + log_p, axis=0) - np.log(30.0)
    ratio = np.exp(log_p[2] - log_q)
    np.testing.assert_allclose(weights.numpy(), 30.0 * ratio / ratio.sum(), rtol=1e-4)
    # Each raw ratio is at most n / n_t = 3: no single old sample can dominate the set.
    assert np.all(ratio <= 3.0 + 1e-6)


def test_per_sample_weights_use_each_samples_own_psi():
    """The default weighting: r(c) = p(c | psi_t) / p(c | psi_then), scaled to mean 1."""
    trainer = _trainer_with_reuse()
    all_latents, (_, _, _, weights) = _reuse_three_iterations(trainer, PSI_PER_ITERATION)
    log_ratio = []
    for latents, means in zip(all_latents, PSI_PER_ITERATION, strict=True):
        trainer.simulator.set_constrained_parameters({"means": np.asarray(means, np.float32)})
        log_then = trainer.simulator.log_prob(latents).numpy()
        trainer.simulator.set_constrained_parameters({"means": np.asarray(PSI_PER_ITERATION[2], np.float32)})
        log_ratio.append(trainer.simulator.log_prob(latents).numpy() - log_then)
    ratio = np.exp(np.concatenate(log_ratio).astype(np.float64))
    np.testing.assert_allclose(weights.numpy(), 30.0 * ratio / ratio.sum(), rtol=1e-4)


def test_mixture_reuse_runs_resumes_and_rejects_unknown_weightings(tmp_path):
    bindings = [
        "AutoSimulateTrainer.reuse_iterations = 3",
        "AutoSimulateTrainer.reuse_weighting = 'mixture'",
        "train_autosimulate.num_outer_iterations = 8",
        "train_autosimulate.checkpoint_interval = 4",
    ]
    uninterrupted = run(tmp_path / "uninterrupted", bindings)
    run(tmp_path / "interrupted", [*bindings, "train_autosimulate.num_outer_iterations = 4"])
    resumed = run(tmp_path / "interrupted", bindings)  # the stored psi of each slot are in the checkpoint
    np.testing.assert_allclose(resumed["final_psi"]["means"], uninterrupted["final_psi"]["means"], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"AutoSimulateTrainer\.reuse_weighting='balance'"):
        run(
            tmp_path / "bad",
            ["AutoSimulateTrainer.reuse_iterations = 3", "AutoSimulateTrainer.reuse_weighting = 'balance'"],
        )
