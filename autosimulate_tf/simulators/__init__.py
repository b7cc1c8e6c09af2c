"""Simulators: a TFP latent distribution p(c | psi) plus a non-differentiable renderer."""

from autosimulate_tf.simulators.base import Simulator, WrappingSimulator
from autosimulate_tf.simulators.digits import ProceduralDigitsSimulator
from autosimulate_tf.simulators.faults import FaultInjectingSimulator
from autosimulate_tf.simulators.gaussian_classes import GaussianClassesSimulator
from autosimulate_tf.simulators.gmm import GaussianMixtureSimulator
from autosimulate_tf.simulators.mnist_digits import MnistDigitsSimulator
from autosimulate_tf.simulators.pools import CategoricalPoolsSimulator, xor_pools
from autosimulate_tf.simulators.regression import SineRegressionSimulator, sine_regression_real_data
from autosimulate_tf.simulators.scenes import SceneSimulator
from autosimulate_tf.simulators.slow import SlowRenderSimulator

__all__ = [
    "CategoricalPoolsSimulator",
    "FaultInjectingSimulator",
    "GaussianClassesSimulator",
    "GaussianMixtureSimulator",
    "MnistDigitsSimulator",
    "ProceduralDigitsSimulator",
    "SceneSimulator",
    "Simulator",
    "SineRegressionSimulator",
    "SlowRenderSimulator",
    "WrappingSimulator",
    "sine_regression_real_data",
    "xor_pools",
]
