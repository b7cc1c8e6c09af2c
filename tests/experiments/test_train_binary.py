"""The absl binary: runs from flags, writes results.json, fails fast and clearly on bad config."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(REPO, "experiments", "train.py")


def run_binary(*flags, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.run(
        [sys.executable, BINARY, *flags], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def test_binary_runs_a_tiny_budget_and_writes_results(tmp_path):
    process = run_binary(
        f"--root_dir={tmp_path}",
        "--gin_file=toy_gmm.gin",
        "--gin_bindings=train_autosimulate.num_outer_iterations = 2",
        "--gin_bindings=NUM_SAMPLES = 50",
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "Found simulator parameters" in process.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["outer_iterations"] == 2
    assert results["simulated_samples"] == 100
    assert len(results["final_psi"]["means"]) == 4
    assert "NUM_SAMPLES = 50" in (tmp_path / "parsed_config.gin").read_text()


def test_misspelled_binding_fails_before_any_work_and_names_it(tmp_path):
    process = run_binary(f"--root_dir={tmp_path}", "--gin_bindings=AutoSimulateTrainer.dampin = 0.1")
    assert process.returncode != 0
    assert "dampin" in process.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_out_of_range_value_fails_and_names_the_setting(tmp_path):
    process = run_binary(f"--root_dir={tmp_path}", "--gin_bindings=HypergradientEstimator.damping = -1.0")
    assert process.returncode != 0
    assert "HypergradientEstimator.damping=-1.0" in process.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_missing_required_binding_fails_and_names_it(tmp_path):
    process = run_binary(
        f"--root_dir={tmp_path}",
        "--gin_file=toy_gmm.gin",
        "--gin_bindings=Problem.simulator = %gin.REQUIRED",
    )
    assert process.returncode != 0
    assert "simulator" in process.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_bad_settings_exit_2_with_one_message_and_no_traceback(tmp_path):
    for index, (gin_file, binding, named) in enumerate(
        [
            (
                "pools.gin",
                "CategoricalPoolsSimulator.initial_probabilities = (0.5, 0.3, 0.1, 0.05, 0.0)",
                "initial_probabilities",
            ),
            ("toy_gmm.gin", "conjugate_gradient.num_iterations = -3", "conjugate_gradient.num_iterations=-3"),
            ("toy_gmm.gin", "HandOff.psi_average_fraction = 1.5", "HandOff.psi_average_fraction=1.5"),
        ]
    ):
        root_dir = tmp_path / str(index)
        process = run_binary(f"--root_dir={root_dir}", f"--gin_file={gin_file}", f"--gin_bindings={binding}")
        assert process.returncode == 2, process.stderr[-3000:]
        assert named in process.stderr
        assert "Traceback" not in process.stderr
        assert not (root_dir / "checkpoints").exists()


def test_a_runtime_failure_keeps_its_traceback(tmp_path):
    """An error that is not a setting (here: a renderer that raises a TypeError) is not called a config error."""
    process = run_binary(
        f"--root_dir={tmp_path}",
        "--gin_file=toy_gmm.gin",
        "--gin_bindings=Problem.simulator = @FaultInjectingSimulator()",
        "--gin_bindings=FaultInjectingSimulator.simulator = @GaussianMixtureSimulator()",
        "--gin_bindings=FaultInjectingSimulator.raise_rate = 1.0",
    )
    assert process.returncode not in (0, 2)
    assert "Configuration error" not in process.stderr
    assert "Traceback" in process.stderr
