"""The README's "Writing your own simulator" example works as printed."""

import os
import re

import gin
import numpy as np

from autosimulate_tf.data import xor_mixture_real_data
from autosimulate_tf.models import mlp
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
    trainer = AutoSimulateTrainer(
        simulator=simulator, real_data=xor_mixture_real_data(), model_fn=mlp, num_samples=40, num_initial_inner_steps=10
    )
    before = simulator.constrained_parameters()
    metrics = trainer.step()
    after = simulator.constrained_parameters()
    assert metrics["num_dropped"] == 0
    assert not np.allclose(before["spread"], after["spread"]), "psi should move after one outer step"
    assert np.isclose(after["class_probabilities"].sum(), 1.0, atol=1e-5)
