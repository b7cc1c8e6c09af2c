"""The 2-D Gaussian-mixture toy simulator (DESIGN.md section 5).

Two classes, two components each; psi is the four component means. A latent is
`(component, point)` with `point ~ N(mean[component], noise_scale^2 I)`; the
renderer returns the point and the component's class. Because the point is part
of the latent, `log p(c | psi)` carries the dependence on the means, and the
score-function estimator never differentiates the renderer. The point is also
location-scale in the means (`point = mean[component] + noise_scale * eps`) and the
render is TF ops, so the pathwise estimator
(`HypergradientEstimator.gradient_estimator = "pathwise"`) can differentiate through it
instead.
"""

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.errors import check
from autosimulate_tf.simulators.base import Simulator

tfd = tfp.distributions

# Class 0 components above, class 1 below: a model trained on this learns a
# horizontal boundary and scores ~50% on the XOR-laid-out real data.
DEFAULT_INITIAL_MEANS = ((-1.5, 1.0), (1.5, 1.2), (-1.4, -1.1), (1.6, -0.9))
DEFAULT_COMPONENT_CLASSES = (0, 0, 1, 1)


@gin.configurable
class GaussianMixtureSimulator(Simulator):
    """2-D Gaussian mixture whose component means are psi."""

    observation_shape = (2,)
    num_classes = 2
    render_with_tf_ops = True
    reparameterized_latents = ("point",)

    def __init__(
        self,
        initial_means=DEFAULT_INITIAL_MEANS,
        component_classes=DEFAULT_COMPONENT_CLASSES,
        noise_scale: float = 1.0,
        mean_bound: float = 4.0,
        name: str = "gaussian_mixture",
    ):
        """Builds the mixture; psi starts at `initial_means`.

        Args:
          initial_means: `[components, 2]` initial means (psi at iteration 0).
          component_classes: class label of each component.
          noise_scale: standard deviation of each component (fixed, not psi).
          mean_bound: search box `[-mean_bound, mean_bound]` for search baselines.
          name: module name.

        Raises:
          ConfigError: for a bad argument, naming it.
        """
        super().__init__(name=name)
        initial_means = np.asarray(initial_means, dtype=np.float32)
        check(
            initial_means.ndim == 2 and initial_means.shape[1] == 2,
            f"GaussianMixtureSimulator.initial_means must have shape [components, 2]; got {initial_means.shape}.",
        )
        check(
            len(component_classes) == initial_means.shape[0],
            f"GaussianMixtureSimulator.component_classes has {len(component_classes)} entries for "
            f"{initial_means.shape[0]} means.",
        )
        check(
            bool(np.isfinite(noise_scale) and noise_scale > 0),
            f"GaussianMixtureSimulator.noise_scale={noise_scale} must be a finite number > 0.",
        )
        check(
            all(label in range(self.num_classes) for label in component_classes),
            f"GaussianMixtureSimulator.component_classes={component_classes} must be class indices in "
            f"[0, {self.num_classes}).",
        )
        check(
            bool(np.isfinite(mean_bound) and mean_bound > 0),
            f"GaussianMixtureSimulator.mean_bound={mean_bound} must be a finite number > 0.",
        )
        self.noise_scale = float(noise_scale)
        self.component_classes = tf.constant(component_classes, dtype=tf.int32)
        self.num_components = initial_means.shape[0]
        self.add_parameter("means", initial_means, bounds=(-mean_bound, mean_bound))

    def latent_distribution(self):
        """`component ~ Uniform{0..K-1}`, `point ~ N(means[component], noise_scale^2 I)`."""
        means = self.parameter("means")
        noise_scale = self.noise_scale
        return tfd.JointDistributionNamed(
            {
                "component": tfd.Categorical(logits=tf.zeros([self.num_components])),
                "point": lambda component: tfd.Independent(
                    tfd.Normal(tf.gather(means, component), noise_scale), reinterpreted_batch_ndims=1
                ),
            }
        )

    def render(self, latent):
        """Returns `(point, class of component)`."""
        return latent["point"], tf.gather(self.component_classes, latent["component"])
