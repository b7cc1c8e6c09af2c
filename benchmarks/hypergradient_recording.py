"""Records every hypergradient estimate of a short AutoSimulate run (for the benchmark scripts).

Used by `hypergradient_snr.py` and `hypergradient_agreement.py`. Call it with
`tf.config.run_functions_eagerly(True)`: the estimates of a compiled run stay inside its graph.
"""

import gin
import numpy as np
import tensorflow as tf

from autosimulate_tf import configs
from autosimulate_tf.problem import Problem
from autosimulate_tf.train.trainer import AutoSimulateTrainer


def record_run(bindings, seed: int, num_iterations: int, gin_file: str, hold_psi: bool = False) -> dict:
    """`{"gradients": [T, P], "influence": [T][n], "labels": [T][n], "within_step_snr": [T]}` of one run,
    with its `initial_psi` and `final_psi` (constrained, by name).

    With `hold_psi` the psi learning rate is 0: every estimate is taken at the starting psi
    while the warm-started model goes on training on its renders.
    """
    gin.clear_config()  # each run sees only its own variant's bindings
    configs.parse_gin([gin_file], [f"SEED = {seed}", "HypergradientEstimator.report_snr = True", *bindings])
    trainer = AutoSimulateTrainer(problem=Problem(), seed=seed)
    if hold_psi:
        trainer.outer_optimizer.learning_rate = 0.0  # Adam's and SGD's steps are then exactly 0
    estimate = trainer.estimator.estimate
    captured = []

    def recording_estimate(objective, simulator, theta, generated, validation, initial_guess=None):
        result = estimate(objective, simulator, theta, generated, validation, initial_guess)
        if not tf.executing_eagerly():  # the trainer's shape-generic trace, not an estimate
            return result
        captured.append((result, np.asarray(generated.labels).reshape(-1)))
        return result

    trainer.estimator.estimate = recording_estimate
    initial_psi = trainer.simulator.constrained_parameters()
    for _ in range(num_iterations):
        trainer.step()
    return {
        "gradients": np.stack([np.concatenate([np.ravel(g) for g in r.gradients]) for r, _ in captured]),
        "influence": [np.asarray(r.influence) for r, _ in captured],
        "labels": [labels for _, labels in captured],
        "within_step_snr": [float(r.diagnostics["psi_snr_median"]) for r, _ in captured],
        "initial_psi": initial_psi,
        "final_psi": trainer.simulator.constrained_parameters(),
    }
