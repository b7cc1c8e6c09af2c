"""The hypergradient under `tf.distribute.MirroredStrategy` equals the single-device one.

Two logical CPU devices must be configured before TensorFlow initialises, which the
pytest process has long done, so the comparison runs in a fresh interpreter
(`distributed_equivalence.py`) and reports relative differences as JSON.
"""

import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "distributed_equivalence.py")


def test_mirrored_strategy_on_two_logical_cpus_matches_one_device():
    completed = subprocess.run(
        [sys.executable, SCRIPT],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["num_replicas"] == 2
    # float64, shards of 18 and 19 examples: only the summation order differs.
    for piece in (
        "validation_value_and_gradient",
        "weighted_train_value_and_gradient",
        "hessian_vector_product",
        "gauss_newton_vector_product",
        "influence_weights",
        "hypergradient",
    ):
        assert result[piece] < 1e-10, (piece, result[piece])
    assert result["hypergradient_norm"] > 1e-3  # the compared gradient is not trivially zero
    # Whole outer iterations in float32 with mirrored model variables: same psi, theta and accounting.
    assert result["model_variables_mirrored"]
    assert result["counters_equal"]
    assert result["psi_moved"] > 1e-2  # psi did move, so equal psi is a real check
    assert result["psi"] < 1e-5, result["psi"]
    assert result["theta"] < 1e-4, result["theta"]
    assert result["hypergradient_norms"] < 1e-4, result["hypergradient_norms"]


def test_strategy_is_selected_by_gin(tmp_path):
    """`AutoSimulateTrainer.strategy = @tf.distribute.MirroredStrategy()` resolves and runs (one device here)."""
    import gin

    from autosimulate_tf import configs
    from autosimulate_tf.train import train_autosimulate

    gin.clear_config()
    configs.parse_gin(
        ["toy_gmm.gin"],
        [
            "AutoSimulateTrainer.strategy = @tf.distribute.MirroredStrategy()",
            "tf.distribute.MirroredStrategy.devices = ['/cpu:0']",
            "train_autosimulate.num_outer_iterations = 2",
            "AutoSimulateTrainer.num_initial_inner_steps = 10",
        ],
    )
    results = train_autosimulate(root_dir=str(tmp_path))
    assert results["outer_iterations"] == 2
    operative = (tmp_path / "operative_config.gin").read_text()
    assert "AutoSimulateTrainer.strategy = @tf.distribute.MirroredStrategy()" in operative
    assert "MirroredStrategy.devices = ['/cpu:0']" in operative
