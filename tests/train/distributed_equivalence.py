"""Run by `test_distribute.py` in a fresh process: two logical CPUs must be configured before TF starts.

Compares every piece of the hypergradient, and whole outer iterations, computed
under a two-replica `MirroredStrategy` with the single-device results. Prints one
JSON object of relative differences (the test asserts on it).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

from autosimulate_tf.data import xor_mixture_real_data  # noqa: E402
from autosimulate_tf.hypergrad import (  # noqa: E402
    GeneratedData,
    HypergradientEstimator,
    TaskObjective,
    curvature,
    influence,
    solvers,
)
from autosimulate_tf.hypergrad.sharding import Sharding  # noqa: E402
from autosimulate_tf.models import mlp  # noqa: E402
from autosimulate_tf.problem import Problem  # noqa: E402
from autosimulate_tf.simulators import GaussianMixtureSimulator  # noqa: E402
from autosimulate_tf.train.trainer import AutoSimulateTrainer  # noqa: E402


def relative_difference(a, b) -> float:
    """max |a - b| / max |b| over a nest of tensors."""
    a = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in tf.nest.flatten(a)])
    b = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in tf.nest.flatten(b)])
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def pieces(strategy) -> dict:
    """Each piece of the hypergradient (float64, uneven shard sizes), single device vs replicas."""
    model = mlp(input_shape=(2,), num_outputs=2, dtype="float64", seed=3)
    single = TaskObjective(model, "softmax_cross_entropy", weight_decay=1e-3)
    sharded = TaskObjective(model, "softmax_cross_entropy", weight_decay=1e-3, sharding=Sharding(strategy))
    simulator = GaussianMixtureSimulator()
    latents = simulator.sample_latents(37, seed=tf.constant([1, 2]))  # 37: shards of 18 and 19
    inputs = tf.cast(latents["point"], tf.float64)
    labels = tf.gather(simulator.component_classes, latents["component"])
    real = xor_mixture_real_data(num_validation=23, num_test=10)
    val_inputs, val_labels = tf.constant(real.validation_inputs, tf.float64), tf.constant(real.validation_labels)
    weights = single.current_weights()
    vector = [tf.random.stateless_normal(tf.shape(w), [4, i], dtype=tf.float64) for i, w in enumerate(weights)]
    result = {"num_replicas": Sharding(strategy).num_replicas}
    result["validation_value_and_gradient"] = relative_difference(
        sharded.mean_value_and_gradient(sharded.validation_loss, weights, val_inputs, val_labels),
        single.mean_value_and_gradient(single.validation_loss, weights, val_inputs, val_labels),
    )
    example_weights = tf.random.stateless_uniform([37], [7, 8], 0.0, 2.0, dtype=tf.float64)
    result["weighted_train_value_and_gradient"] = relative_difference(
        sharded.mean_value_and_gradient(sharded.train_loss, weights, inputs, labels, example_weights),
        single.mean_value_and_gradient(single.train_loss, weights, inputs, labels, example_weights),
    )
    for name in curvature.CURVATURES:
        result[f"{name}_vector_product"] = relative_difference(
            curvature.make_damped_matvec(sharded, weights, inputs, labels, name, 0.1)(vector),
            curvature.make_damped_matvec(single, weights, inputs, labels, name, 0.1)(vector),
        )
    result["influence_weights"] = relative_difference(
        influence.influence_weights(sharded, weights, inputs, labels, vector),
        influence.influence_weights(single, weights, inputs, labels, vector),
    )
    estimator = HypergradientEstimator(solver=solvers.exact)
    generated = GeneratedData(inputs, labels, latents)
    estimates = [
        estimator.estimate(objective, simulator, weights, generated, (val_inputs, val_labels))
        for objective in (sharded, single)
    ]
    result["hypergradient"] = relative_difference(estimates[0].gradients, estimates[1].gradients)
    result["hypergradient_norm"] = float(np.linalg.norm(estimates[1].gradients[0]))
    return result


def trainer_runs(strategy, num_iterations: int = 2) -> dict:
    """Whole outer iterations (float32) with and without the strategy, from the same seed."""

    def run(strategy_or_none):
        trainer = AutoSimulateTrainer(
            problem=Problem(
                simulator=GaussianMixtureSimulator(),
                real_data=xor_mixture_real_data(num_validation=101, num_test=50),
                model_fn=mlp,
            ),
            num_samples=61,
            num_inner_steps=5,
            num_initial_inner_steps=20,
            inner_batch_size=31,
            strategy=strategy_or_none,
            seed=5,
        )
        history = [trainer.step() for _ in range(num_iterations)]
        return trainer, history

    distributed, distributed_history = run(strategy)
    single, single_history = run(None)
    return {
        "model_variables_mirrored": all(
            "Mirrored" in type(v.value).__name__ for v in distributed.model.trainable_variables
        ),
        "theta": relative_difference(
            [v.value for v in distributed.model.trainable_variables],
            [v.value for v in single.model.trainable_variables],
        ),
        "psi": relative_difference(distributed.simulator.psi_variables, single.simulator.psi_variables),
        "psi_moved": relative_difference(single.simulator.psi_variables, GaussianMixtureSimulator().psi_variables),
        "hypergradient_norms": relative_difference(
            [h["hypergradient_norm"] for h in distributed_history], [h["hypergradient_norm"] for h in single_history]
        ),
        "counters_equal": all(
            distributed_history[-1][k] == single_history[-1][k]
            for k in ("simulated_samples", "model_steps", "hvp_count", "objective_evaluations")
        ),
    }


def main() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = pieces(strategy)
    result.update(trainer_runs(strategy))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
