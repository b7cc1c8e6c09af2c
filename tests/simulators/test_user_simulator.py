"""The "write one class" promise: a user-defined numpy simulator runs through the whole trainer.

`ThresholdSimulator` is defined here the way `simulators/base.py` tells users to: one
`Simulator` subclass, registered with gin, whose `render` is plain numpy
(`render_with_tf_ops = False`) and fails for a few latents. The latent is
`{label ~ Categorical(2), offset ~ N(shift, 0.5), noise ~ N(0, 1)}` with psi = `shift`,
and a sample renders to `([offset + 2 label - 1, noise], label)`. The test binds it in a gin
string modelled on `gin/toy_gmm.gin`, runs `train_autosimulate` for three outer iterations
and checks `results.json`, the cost counters against what the renderer itself recorded,
and that psi moved.
"""

import json
import threading

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf import configs  # noqa: F401  (registers every library configurable)
from autosimulate_tf import results_schema as schema
from autosimulate_tf.data import keep_valid, render_latents
from autosimulate_tf.simulators import Simulator
from autosimulate_tf.train import train_autosimulate

tfd = tfp.distributions

FAILURE_NOISE = 1.8  # render raises when the noise latent exceeds this (~3.6% of samples)
INSTANCES = []  # every ThresholdSimulator built, so the test can read what its renderer saw


@gin.configurable("ThresholdSimulator", module="test_user_simulator")
class ThresholdSimulator(Simulator):
    """1-D threshold data in the first coordinate, pure noise in the second; psi is the offset mean."""

    observation_shape = (2,)
    num_classes = 2
    render_with_tf_ops = False

    def __init__(self, initial_shift: float = 0.5, name: str = "threshold"):
        super().__init__(name=name)
        self.add_parameter("shift", initial_shift, bounds=(-3.0, 3.0))
        self.initial_shift = initial_shift
        self.render_calls = 0
        self.render_failures = 0
        self.latent_types = set()
        self._lock = threading.Lock()  # render runs on tf.data threads
        INSTANCES.append(self)

    def latent_distribution(self):
        return tfd.JointDistributionNamed(
            {
                "label": tfd.Categorical(logits=tf.zeros([2])),
                "offset": tfd.Normal(self.parameter("shift"), 0.5),
                "noise": tfd.Normal(0.0, 1.0),
            }
        )

    def render(self, latent):
        label, offset, noise = latent["label"], latent["offset"], latent["noise"]
        with self._lock:
            self.render_calls += 1
            self.latent_types.update(type(value) for value in latent.values())
            if noise > FAILURE_NOISE:
                self.render_failures += 1
                raise ValueError(f"noise {noise} out of range")
        return np.array([offset + 2 * label - 1, noise], np.float32), label


CONFIG = """
ThresholdSimulator.initial_shift = 0.25

xor_mixture_real_data.num_validation = 200
xor_mixture_real_data.num_test = 500
xor_mixture_real_data.seed = 2020

mlp.hidden_units = (8,)
mlp.activation = 'tanh'

Problem.simulator = @ThresholdSimulator()
Problem.real_data = @xor_mixture_real_data()
Problem.model_fn = @mlp
Problem.loss = 'softmax_cross_entropy'
AutoSimulateTrainer.num_samples = 120
AutoSimulateTrainer.num_inner_steps = 5
AutoSimulateTrainer.num_initial_inner_steps = 20
AutoSimulateTrainer.inner_batch_size = 32
AutoSimulateTrainer.weight_decay = 1e-4
HypergradientEstimator.curvature = 'gauss_newton'
HypergradientEstimator.damping = 0.1
HypergradientEstimator.solver = @conjugate_gradient
HypergradientEstimator.baseline = 'leave_one_out'
AutoSimulateTrainer.seed = 0
conjugate_gradient.num_iterations = 5

AutoSimulateTrainer.inner_optimizer = @inner/keras.optimizers.Adam
inner/keras.optimizers.Adam.learning_rate = 0.01
AutoSimulateTrainer.outer_optimizer = @outer/keras.optimizers.Adam
outer/keras.optimizers.Adam.learning_rate = 0.1

train_autosimulate.num_outer_iterations = 3
train_autosimulate.checkpoint_interval = 2
train_autosimulate.log_interval = 1000
"""


def test_numpy_renderer_runs_through_the_render_pipeline():
    simulator = ThresholdSimulator(initial_shift=0.0)
    latents = simulator.sample_latents(400, seed=tf.constant([1, 2]))
    rendered = render_latents(simulator, latents)
    noise = latents["noise"].numpy()
    np.testing.assert_array_equal(rendered.valid.numpy(), noise <= FAILURE_NOISE)
    inputs, labels, kept, num_dropped = keep_valid(rendered, latents)
    assert num_dropped == simulator.render_failures > 0
    assert simulator.render_calls == 400
    expected_first = kept["offset"].numpy() + 2 * kept["label"].numpy() - 1
    np.testing.assert_allclose(inputs.numpy()[:, 0], expected_first, rtol=1e-6)
    np.testing.assert_array_equal(inputs.numpy()[:, 1], kept["noise"].numpy())
    np.testing.assert_array_equal(labels.numpy(), kept["label"].numpy())
    assert all(issubclass(kind, np.generic | np.ndarray) for kind in simulator.latent_types), simulator.latent_types


def test_user_simulator_trains_end_to_end_from_gin(tmp_path):
    gin.clear_config()
    INSTANCES.clear()
    gin.parse_config(CONFIG)
    history = []
    results = train_autosimulate(root_dir=str(tmp_path), history=history)

    (simulator,) = INSTANCES
    assert simulator.initial_shift == 0.25, "the gin binding must reach the user's constructor"
    assert set(schema.RESULTS_KEYS) <= set(results)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert [metrics["iteration"] for metrics in history] == [1, 2, 3]

    assert results["outer_iterations"] == 3
    assert results["objective_evaluations"] == 3
    assert results["simulated_samples"] == 3 * 120
    assert results["model_steps"] == 20 + 2 * 5
    assert results["skipped_updates"] == 0
    # Each outer iteration: CG warm start (1) + at most 5 iterations + residual (1).
    assert 3 * 2 <= results["hvp_count"] <= 3 * 7
    # The numpy renderer was called once per simulated latent plus 1-8 preflight renders (the trainer renders
    # up to 8 samples before training, stopping at the first good one); every training-time failure was dropped.
    preflight_calls = simulator.render_calls - results["simulated_samples"]
    assert 1 <= preflight_calls <= 8
    assert results["dropped_samples"] > 0
    assert results["dropped_samples"] <= simulator.render_failures <= results["dropped_samples"] + preflight_calls - 1
    assert sum(metrics["num_dropped"] for metrics in history) == results["dropped_samples"]
    assert all(issubclass(kind, np.generic | np.ndarray) for kind in simulator.latent_types)

    # psi is the user's `shift`, it was updated by the outer optimizer, and results report it constrained.
    assert set(results["final_psi"]) == {"shift"}
    final_shift = results["final_psi"]["shift"]
    assert np.isfinite(final_shift) and final_shift != pytest.approx(0.25, abs=1e-3)
    assert final_shift == pytest.approx(float(simulator.parameter("shift")))
    for key in ("val_accuracy", "test_accuracy"):
        assert 0.0 <= results[key] <= 1.0
    assert np.isfinite(results["val_loss"]) and np.isfinite(results["test_loss"])

    operative = (tmp_path / "operative_config.gin").read_text()
    assert "ThresholdSimulator.initial_shift = 0.25" in operative
    checkpoints = {path.name for path in (tmp_path / "checkpoints").iterdir()}
    assert {"ckpt-2.index", "ckpt-3.index"} <= checkpoints, checkpoints  # checkpoint_interval = 2, and the end
