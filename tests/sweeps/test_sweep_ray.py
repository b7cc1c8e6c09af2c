"""`--backend=ray`: the same trials on a local Ray Tune instance, started and shut down by the sweep."""

import os
import sys

import pytest
from sweep_testing import TINY_TRAINING

from autosimulate_tf.sweeps import run, trial_runner


def test_ray_backend_names_the_extra_when_ray_is_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'autosimulate_tf\[ray\]'"):
        run.run_sweep(str(tmp_path), ["toy_gmm.gin"], sweep_lines=["NUM_SAMPLES=[20]"], settings=run.RunSettings("ray"))
    assert not os.listdir(tmp_path)


def test_a_sweep_on_a_local_ray_instance(tmp_path):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    assert not ray.is_initialized()
    outcome = run.run_sweep(
        str(tmp_path),
        ["toy_gmm.gin"],
        [*TINY_TRAINING, "NUM_SAMPLES = 20"],
        sweep_lines=["HypergradientEstimator.damping=[0.1]"],
        seeds=[1],
        settings=run.RunSettings(backend="ray", cpus_per_trial=1),
    )
    assert not ray.is_initialized(), "the sweep shuts down the Ray instance it started"
    (row,) = outcome.rows
    assert row["status"] == "finished" and 0.0 <= row["val_accuracy"] <= 1.0
    record = trial_runner.read_record(row["folder"])
    assert record["command"][1:3] == ["-m", "autosimulate_tf.train.launch"]  # the same child as locally
    assert "--gin_bindings=SEED = 1" in record["command"]
    assert os.path.isdir(tmp_path / "ray_results" / "tune")
