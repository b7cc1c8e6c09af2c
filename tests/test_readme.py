"""The README's "Writing your own simulator" example works as printed."""

import os
import re

import gin
import numpy as np

from autosimulate_tf.data import xor_mixture_real_data
from autosimulate_tf.models import mlp
from autosimulate_tf.problem import Problem
from autosimulate_tf.train import AutoSimulateTrainer

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_simulator_example() -> str:
    with open(README) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    (example,) = [block for block in blocks if "class BlobSimulator" in block]
    return example


def test_readme_simulator_example_trains():
    namespace = {}
    with gin.unlock_config():
        exec(readme_simulator_example(), namespace)
    simulator = namespace["BlobSimulator"]()
    problem = Problem(simulator=simulator, real_data=xor_mixture_real_data(), model_fn=mlp)
    trainer = AutoSimulateTrainer(problem=problem, num_samples=40, num_initial_inner_steps=10)
    before = simulator.constrained_parameters()
    metrics = trainer.step()
    after = simulator.constrained_parameters()
    assert metrics["num_dropped"] == 0
    assert not np.allclose(before["spread"], after["spread"]), "psi should move after one outer step"
    assert np.isclose(after["class_probabilities"].sum(), 1.0, atol=1e-5)


def running_bigger_bindings() -> list[str]:
    """The gin lines of the README's "Running bigger" section, comments stripped."""
    with open(README) as f:
        text = f.read()
    section = text.split("## Running bigger", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


def test_readme_running_bigger_bindings_name_real_configurables():
    from autosimulate_tf import configs

    bindings = running_bigger_bindings()
    assert any("ProcessPoolBackend" in line for line in bindings)
    assert any("RayBackend" in line for line in bindings)
    assert any("MirroredStrategy" in line for line in bindings)
    for line in bindings:
        gin.clear_config()
        # Parsing with skip_unknown=False fails on any misspelled configurable or parameter.
        configs.parse_gin(["toy_gmm.gin"], [line])
    gin.clear_config()
