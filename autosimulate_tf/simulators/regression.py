"""A regression simulator: inputs from a psi-controlled Gaussian, targets from a fixed curve.

The smallest problem on which AutoSimulate tunes a regressor. A latent is one input
`x ~ N(input_mean, input_scale^2)` and label noise; the renderer returns `x` and
`sin(frequency x) + noise`. A small model fits the curve well only where its training
inputs lie, so the real data's input distribution (`sine_regression_real_data`) is what
psi should move towards: covariate shift, with the loss `squared_error` and no accuracy.
`x` is location-scale in psi and the render is TF ops, so the pathwise estimator
(`HypergradientEstimator.gradient_estimator = "pathwise"`) applies; the label noise does
not depend on psi and needs neither estimator.
"""

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.data.real import RealData
from autosimulate_tf.errors import check
from autosimulate_tf.simulators.base import Simulator

tfb = tfp.bijectors
tfd = tfp.distributions


@gin.configurable
class SineRegressionSimulator(Simulator):
    """`x ~ N(input_mean, input_scale^2)`, `y = sin(frequency x) + noise`; psi = input mean and scale."""

    observation_shape = (1,)
    label_shape = ()
    label_dtype = np.float32
    num_classes = None
    render_with_tf_ops = True
    reparameterized_latents = ("x",)

    def __init__(
        self,
        initial_input_mean: float = -1.0,
        initial_input_scale: float = 1.0,
        frequency: float = 2.0,
        noise_scale: float = 0.1,
        name: str = "sine_regression",
    ):
        """Args:
        initial_input_mean: psi `input_mean` at iteration 0.
        initial_input_scale: psi `input_scale` at iteration 0 (> 0).
        frequency: of the target curve `sin(frequency x)` (fixed, not psi).
        noise_scale: standard deviation of the label noise (fixed, not psi; > 0).
        name: module name.
        """
        super().__init__(name=name)
        check(frequency > 0, f"SineRegressionSimulator.frequency={frequency} must be > 0.")
        check(noise_scale > 0, f"SineRegressionSimulator.noise_scale={noise_scale} must be > 0.")
        self.frequency = float(frequency)
        self.noise_scale = float(noise_scale)
        self.add_parameter("input_mean", initial_input_mean, bounds=(-3.0, 3.0))
        self.add_parameter("input_scale", initial_input_scale, bijector=tfb.Softplus(), bounds=(0.1, 2.0))

    def latent_distribution(self):
        """`x ~ N(input_mean, input_scale^2)` and standard-normal label noise."""
        return tfd.JointDistributionNamed(
            {
                "x": tfd.Normal(self.parameter("input_mean"), self.parameter("input_scale")),
                "noise": tfd.Normal(0.0, 1.0),
            }
        )

    def render(self, latent):
        """Returns `([x], sin(frequency x) + noise_scale * noise)`."""
        x = tf.cast(latent["x"], tf.float32)
        label = tf.sin(self.frequency * x) + self.noise_scale * tf.cast(latent["noise"], tf.float32)
        return tf.reshape(x, [1]), label


@gin.configurable
def sine_regression_real_data(
    num_validation: int = 200,
    num_test: int = 1000,
    input_mean: float = 1.5,
    input_scale: float = 0.5,
    frequency: float = 2.0,
    noise_scale: float = 0.1,
    seed: int = 2020,
):
    """Real data of the regression toy: inputs from `N(input_mean, input_scale^2)`, targets from the same curve.

    Returns:
      A `RealData` with `[n, 1]` float32 inputs and `[n]` float32 targets.
    """
    check(num_validation >= 1, f"sine_regression_real_data.num_validation={num_validation} must be >= 1.")
    check(num_test >= 1, f"sine_regression_real_data.num_test={num_test} must be >= 1.")
    rng = np.random.default_rng(seed)

    def split(size):
        x = rng.normal(input_mean, input_scale, size=(size, 1)).astype(np.float32)
        y = np.sin(frequency * x[:, 0]) + noise_scale * rng.standard_normal(size)
        return x, y.astype(np.float32)

    validation, test = split(num_validation), split(num_test)
    return RealData(validation[0], validation[1], test[0], test[1])
