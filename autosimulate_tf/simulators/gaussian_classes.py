"""Two Gaussian classes whose per-input separation is psi: the psi-dimension benchmark (DESIGN.md section 5).

A latent is `(label, point)` with `label ~ Uniform{0, 1}` and
`point ~ N((2 label - 1) separation / 2, noise_scale^2 I)` in `dimension` inputs; the
renderer returns the point and the label. psi is `separation`, one component per input,
so `dimension` sets the number of psi components (2, 8, 32, 128 in the benchmark) while
the problem stays the same.

Its real data (`data/gaussian_classes.py`) has the same form with a hidden separation of
fixed norm, every component non-zero, half of each sign, orthogonal to this simulator's
default (all components equal). A model trained on the default renders therefore scores
~50% on the real data at every dimension, and to reach the Bayes accuracy (~95%) psi has
to point the way the hidden separation does, in every component. A search over psi has
to find that direction in a `dimension`-dimensional box; a gradient reads it from the
validation data.

The point is part of the latent, so `log p(c | psi)` carries the dependence on psi and
the score-function estimator never differentiates the renderer; the point is also
location-scale in psi (`reparameterized_latents`) and the render is TF ops, for a
pathwise estimator.
"""

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.data.gaussian_classes import SEPARATION_NORM, check_dimension, uniform_separation
from autosimulate_tf.errors import check
from autosimulate_tf.simulators.base import Simulator

tfd = tfp.distributions


@gin.configurable
class GaussianClassesSimulator(Simulator):
    """Two classes at `-separation/2` and `+separation/2` in `dimension` inputs; psi = `separation`."""

    num_classes = 2
    render_with_tf_ops = True
    reparameterized_latents = ("point",)

    def __init__(
        self,
        dimension: int = 8,
        initial_separation=None,
        noise_scale: float = 1.0,
        separation_bound: float = 3.0,
        name: str = "gaussian_classes",
    ):
        """Builds the simulator; psi starts at `initial_separation`.

        Args:
          dimension: number of inputs, and of psi components (>= 2).
          initial_separation: `[dimension]` psi at iteration 0; None: the untuned guess
            `uniform_separation(dimension)` (every input separates the classes equally,
            with the real data's separation norm).
          noise_scale: standard deviation of each input around its class mean (fixed, not psi).
          separation_bound: search box `[-separation_bound, separation_bound]` of every
            component, for the search baselines.
          name: module name.

        Raises:
          ConfigError: for a bad argument, naming it.
        """
        super().__init__(name=name)
        check_dimension(dimension, "GaussianClassesSimulator")
        if initial_separation is None:
            initial_separation = uniform_separation(dimension, SEPARATION_NORM)
        initial_separation = np.asarray(initial_separation, np.float32)
        check(
            initial_separation.shape == (dimension,),
            f"GaussianClassesSimulator.initial_separation must have shape ({dimension},) for dimension={dimension}; "
            f"got {initial_separation.shape}.",
        )
        check(
            bool(np.isfinite(noise_scale) and noise_scale > 0),
            f"GaussianClassesSimulator.noise_scale={noise_scale} must be a finite number > 0.",
        )
        check(
            bool(np.isfinite(separation_bound) and separation_bound > 0),
            f"GaussianClassesSimulator.separation_bound={separation_bound} must be a finite number > 0.",
        )
        check(
            bool(np.all(np.abs(initial_separation) <= separation_bound)),
            f"GaussianClassesSimulator.initial_separation must lie inside [-separation_bound, separation_bound] = "
            f"[-{separation_bound}, {separation_bound}].",
        )
        self.dimension = int(dimension)
        self.observation_shape = (self.dimension,)
        self.noise_scale = float(noise_scale)
        self.add_parameter("separation", initial_separation, bounds=(-separation_bound, separation_bound))

    def latent_distribution(self):
        """`label ~ Uniform{0, 1}`, `point ~ N((2 label - 1) separation / 2, noise_scale^2 I)`."""
        half_separation = self.parameter("separation") / 2.0
        noise_scale = self.noise_scale

        def point(label):
            sign = 2.0 * tf.cast(label, tf.float32) - 1.0
            return tfd.Independent(tfd.Normal(sign[..., None] * half_separation, noise_scale), 1)

        return tfd.JointDistributionNamed({"label": tfd.Categorical(logits=tf.zeros([2])), "point": point})

    def render(self, latent):
        """Returns `(point, label)`."""
        return latent["point"], latent["label"]
