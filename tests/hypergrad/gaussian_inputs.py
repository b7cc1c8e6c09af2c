"""A linear-Gaussian regression simulator for closed-form hypergradient checks, shared by tests."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.simulators import Simulator

tfd = tfp.distributions


class GaussianInputsSimulator(Simulator):
    """`x ~ N(psi, input_scale^2 I)`, `noise ~ N(0, label_noise^2)`; renders `(x, x . beta + noise)`.

    `x` is declared reparameterised (used only by the pathwise estimator).
    """

    observation_shape = (2,)
    observation_dtype = np.float64
    num_classes = None
    label_dtype = np.float64
    render_with_tf_ops = True
    reparameterized_latents = ("x",)

    def __init__(self, psi, input_scale: float, label_noise: float, beta):
        super().__init__(name="gaussian_inputs")
        self.input_scale = float(input_scale)
        self.label_noise = float(label_noise)
        self.beta = np.asarray(beta, np.float64)
        self.add_parameter("mean", psi)

    def latent_distribution(self):
        """`x` and the label noise."""
        return tfd.JointDistributionNamed(
            {
                "x": tfd.Independent(tfd.Normal(tf.cast(self.parameter("mean"), tf.float64), self.input_scale), 1),
                "noise": tfd.Normal(tf.constant(0.0, tf.float64), self.label_noise),
            }
        )

    def render(self, latent):
        """`(x, x . beta + noise)` in TF ops."""
        return latent["x"], tf.reduce_sum(latent["x"] * self.beta) + latent["noise"]
