"""The psi and latent distribution shared by the stroke-digit simulators (UCI 8x8 and MNIST 28x28).

Both describe a digit by its class, a style variant of its glyph and a set of continuous
style factors, each factor a Normal whose mean and log-scale are psi, plus a psi-free
`noise_seed`. They differ only in their tables (glyph variants, factors) and in how they
render; subclasses set the tables as class attributes and implement `render`.
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.errors import check
from autosimulate_tf.simulators.base import Simulator

tfd = tfp.distributions

# Logit of a padding variant. A constant (not psi), so no optimiser or search can make an
# undefined variant possible; exp(-1e9) is exactly 0 in float32, and log_softmax stays finite.
MASKED_LOGIT = -1e9


class StyleDigitsSimulator(Simulator):
    """Class prior, style-variant logits and factor means / log-scales as psi (module docstring).

    Subclasses set `variant_names` (flat, `"<digit>_<variant>"`), `variant_counts` (variants
    per digit), `max_variants` (the padded width) and `factors` (each with `name`,
    `mean_bounds`, `scale_bounds`), and pass `default_moments(factor) -> (mean, std)`.
    """

    variant_names: tuple = ()
    variant_counts: tuple = ()
    max_variants: int = 1
    factors: tuple = ()

    def __init__(self, logit_bound: float, tune_class_prior: bool, name: str, default_moments):
        """Creates psi at the untuned default.

        Args:
          logit_bound: search box `[-logit_bound, logit_bound]` of the class and variant logits.
          tune_class_prior: whether `class_logits` is part of psi (False: a uniform prior).
          name: module name.
          default_moments: `factor -> (mean, std)` of the factor's default Normal.

        Raises:
          ConfigError: when `logit_bound` is not a finite number > 0.
        """
        super().__init__(name=name)
        check(
            bool(np.isfinite(logit_bound) and logit_bound > 0),
            f"{type(self).__name__}.logit_bound={logit_bound} must be a finite number > 0.",
        )
        self.tune_class_prior = bool(tune_class_prior)
        bounds = (-logit_bound, logit_bound)
        if self.tune_class_prior:
            self.add_parameter("class_logits", np.zeros(self.num_classes, np.float32), bounds=bounds)
        self.add_parameter("variant_logits", np.zeros(len(self.variant_names), np.float32), bounds=bounds)
        for factor in self.factors:
            mean, std = default_moments(factor)
            self.add_parameter(f"{factor.name}_mean", mean, bounds=factor.mean_bounds)
            low, high = factor.scale_bounds
            self.add_parameter(f"{factor.name}_log_scale", math.log(std), bounds=(math.log(low), math.log(high)))
        # Where each flat variant logit goes in the [classes, max_variants] matrix.
        self._variant_positions = tf.constant(
            [[digit, slot] for digit in range(self.num_classes) for slot in range(self.variant_counts[digit])],
            tf.int32,
        )

    def class_logits(self) -> tf.Tensor:
        """`[classes]` class logits: psi when `tune_class_prior`, else zeros (uniform prior)."""
        if self.tune_class_prior:
            return self.parameter("class_logits")
        return tf.zeros([self.num_classes], tf.float32)

    def variant_logit_matrix(self) -> tf.Tensor:
        """`[classes, max_variants]` logits: psi where a variant exists, `MASKED_LOGIT` in the padding."""
        padding = tf.fill([self.num_classes, self.max_variants], tf.constant(MASKED_LOGIT, tf.float32))
        return tf.tensor_scatter_nd_update(padding, self._variant_positions, self.parameter("variant_logits"))

    def latent_distribution(self):
        """Class, variant given class, one Normal per factor, and the psi-free `noise_seed`."""
        variant_logits = self.variant_logit_matrix()
        components = {
            "digit": tfd.Categorical(logits=self.class_logits()),
            "variant": lambda digit: tfd.Categorical(logits=tf.gather(variant_logits, digit)),
        }
        for factor in self.factors:
            components[factor.name] = tfd.Normal(
                self.parameter(f"{factor.name}_mean"), tf.exp(self.parameter(f"{factor.name}_log_scale"))
            )
        components["noise_seed"] = tfd.Uniform(tf.constant(0.0, tf.float32), 1.0)
        return tfd.JointDistributionNamed(components)
