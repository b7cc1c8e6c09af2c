"""A simulator written outside the package: noisy 1-D pulses, a Gaussian bump or a flat box.

Each example is a signal of `SIGNAL_LENGTH` samples on `[0, 1]` holding one pulse plus
white noise. Where the pulse sits, how wide it is and which shape it has are drawn from a
distribution whose parameters are psi:

- `position_mean`, `position_scale`: the pulse centre is `N(position_mean, position_scale^2)`;
- `log_width_mean`, `log_width_scale`: the pulse half-width is
  `exp(N(log_width_mean, log_width_scale^2))`;
- `class_probabilities`: how often each shape is drawn, a point on the simplex.

`PulseShapeSimulator` labels a signal by its shape (0: bump, 1: box), a classification
task; `PulsePositionSimulator` labels it by the pulse centre, a regression task. A fully
connected model learns either only at the positions and widths it was trained on, so a
simulator whose pulses sit elsewhere trains a model that fails on the real signals.

The real signals (`pulse_shape_real_data`, `pulse_position_real_data`) are rendered by the
same code from hidden parameters with a fixed seed, so nothing is downloaded and the
parameters AutoSimulate should find are known.
"""

import gin
import numpy as np
import tensorflow_probability as tfp

from autosimulate_tf.data.real import RealData
from autosimulate_tf.errors import check
from autosimulate_tf.simulators import Simulator

tfb = tfp.bijectors
tfd = tfp.distributions

SIGNAL_LENGTH = 32
# Where every signal is sampled: the centres of SIGNAL_LENGTH equal cells of [0, 1].
GRID = (np.arange(SIGNAL_LENGTH) + 0.5) / SIGNAL_LENGTH
BUMP, BOX = 0, 1
# Pulse heights are a nuisance the simulator does not tune: the same range in simulation and reality.
AMPLITUDE_RANGE = (0.6, 1.4)


def render_pulse(shape: int, position: float, width: float, amplitude: float, noise, noise_scale: float):
    """One signal: a bump (Gaussian of scale `width`) or a box (half-width `width`) plus scaled noise.

    Args:
      shape: `BUMP` or `BOX`.
      position: the pulse centre on `[0, 1]`.
      width: the pulse half-width (> 0).
      amplitude: the pulse height.
      noise: `SIGNAL_LENGTH` standard-normal draws.
      noise_scale: standard deviation of the noise added to every sample.

    Returns:
      A `[SIGNAL_LENGTH]` float32 array.
    """
    offset = (GRID - position) / width
    pulse = np.exp(-0.5 * offset**2) if shape == BUMP else (np.abs(offset) <= 1.0).astype(np.float64)
    return (amplitude * pulse + noise_scale * np.asarray(noise)).astype(np.float32)


class PulseSimulator(Simulator):
    """psi and the latent distribution shared by the shape and the position task.

    Subclasses choose the label in `render`. This base class is not gin-configurable, so a
    binding of one task's simulator never reaches the other's.
    """

    observation_shape = (SIGNAL_LENGTH,)

    def __init__(
        self,
        initial_position_mean: float = 0.3,
        initial_position_scale: float = 0.2,
        initial_width: float = 0.1,
        initial_log_width_scale: float = 0.5,
        initial_class_probabilities=(0.8, 0.2),
        noise_scale: float = 0.1,
        name: str = "pulses",
    ):
        """Declares the psi components and the fixed noise level.

        Args:
          initial_position_mean: psi `position_mean` at iteration 0, in (0, 1).
          initial_position_scale: psi `position_scale` at iteration 0 (> 0).
          initial_width: the median pulse half-width at iteration 0 (> 0); psi holds its
            log, `log_width_mean`.
          initial_log_width_scale: psi `log_width_scale` at iteration 0 (> 0).
          initial_class_probabilities: psi `class_probabilities` at iteration 0 (bump, box).
          noise_scale: standard deviation of the noise on every sample (fixed, not psi).
          name: module name.

        Raises:
          ConfigError: for a bad argument, naming it.
        """
        super().__init__(name=name)
        check(initial_width > 0, f"{type(self).__name__}.initial_width={initial_width} must be > 0.")
        check(noise_scale > 0, f"{type(self).__name__}.noise_scale={noise_scale} must be > 0.")
        self.noise_scale = float(noise_scale)
        # Each bijector maps an unconstrained variable onto the component's domain, so no psi
        # update can leave it. Sigmoid keeps the mean centre on the signal: a pulse centred far
        # off it would be invisible. `bounds` is the box that random search and Bayesian
        # optimisation search; AutoSimulate ignores it.
        self.add_parameter("position_mean", initial_position_mean, bijector=tfb.Sigmoid(), bounds=(0.1, 0.9))
        self.add_parameter("position_scale", initial_position_scale, bijector=tfb.Softplus(), bounds=(0.02, 0.3))
        self.add_parameter("log_width_mean", np.log(initial_width), bounds=(np.log(0.02), np.log(0.2)))
        self.add_parameter("log_width_scale", initial_log_width_scale, bijector=tfb.Softplus(), bounds=(0.05, 1.0))
        # A simplex component needs no bounds: the search baselines draw it from a flat Dirichlet.
        self.add_parameter("class_probabilities", initial_class_probabilities, bijector=tfb.SoftmaxCentered())

    def latent_distribution(self):
        """p(c | psi): shape, centre, log half-width, height and the noise draws of one signal."""
        return tfd.JointDistributionNamed(
            {
                "shape": tfd.Categorical(probs=self.parameter("class_probabilities")),
                "position": tfd.Normal(self.parameter("position_mean"), self.parameter("position_scale")),
                "log_width": tfd.Normal(self.parameter("log_width_mean"), self.parameter("log_width_scale")),
                # Not psi, but part of the latent so that `render` is a function of its latent alone.
                "amplitude": tfd.Uniform(*AMPLITUDE_RANGE),
                "noise": tfd.Sample(tfd.Normal(0.0, 1.0), SIGNAL_LENGTH),
            }
        )

    def render_signal(self, latent):
        """The signal of one latent (a dict of numpy values), as float32."""
        return render_pulse(
            int(latent["shape"]),
            float(latent["position"]),
            float(np.exp(latent["log_width"])),
            float(latent["amplitude"]),
            latent["noise"],
            self.noise_scale,
        )


@gin.configurable
class PulseShapeSimulator(PulseSimulator):
    """Classification: which shape is the pulse (0: bump, 1: box)."""

    num_classes = 2

    def render(self, latent):
        """Numpy in, `(signal, shape)` out; never differentiated."""
        return self.render_signal(latent), np.int32(latent["shape"])


@gin.configurable
class PulsePositionSimulator(PulseSimulator):
    """Regression: where is the pulse centre."""

    num_classes = None
    label_dtype = np.float32

    def render(self, latent):
        """Numpy in, `(signal, centre)` out; never differentiated."""
        return self.render_signal(latent), np.float32(latent["position"])


LABELS = ("shape", "position")


@gin.configurable
def pulse_real_data(
    label: str = "shape",
    num_validation: int = 300,
    num_test: int = 2000,
    position_mean: float = 0.65,
    position_scale: float = 0.08,
    width: float = 0.08,
    log_width_scale: float = 0.2,
    class_probabilities=(0.5, 0.5),
    noise_scale: float = 0.1,
    seed: int = 2020,
) -> RealData:
    """The real signals, rendered from hidden psi (the arguments) with a fixed seed.

    Args:
      label: `"shape"` (int32 labels, for `PulseShapeSimulator`) or `"position"` (the
        float32 pulse centres, for `PulsePositionSimulator`).
      num_validation: signals the optimiser sees (the validation split).
      num_test: held-out signals, used only for reporting.
      position_mean: hidden mean pulse centre.
      position_scale: hidden standard deviation of the centre.
      width: hidden median half-width.
      log_width_scale: hidden standard deviation of the log half-width.
      class_probabilities: hidden frequencies of bump and box.
      noise_scale: noise standard deviation (the simulator's, not psi).
      seed: numpy seed; fixed so every run and every method sees the same real data.

    Returns:
      A `RealData` with `[n, SIGNAL_LENGTH]` float32 signals and `[n]` labels.

    Raises:
      ConfigError: for an unknown `label` or an empty split.
    """
    check(label in LABELS, f"pulse_real_data.label={label!r} must be one of {LABELS}.")
    check(
        num_validation >= 1 and num_test >= 1,
        f"pulse_real_data.num_validation={num_validation} and num_test={num_test} must be >= 1.",
    )
    rng = np.random.default_rng(seed)
    probabilities = np.asarray(class_probabilities, np.float64)
    splits = []
    for size in (num_validation, num_test):
        shapes = rng.choice(len(probabilities), size=size, p=probabilities / probabilities.sum())
        positions = rng.normal(position_mean, position_scale, size=size)
        widths = np.exp(rng.normal(np.log(width), log_width_scale, size=size))
        amplitudes = rng.uniform(*AMPLITUDE_RANGE, size=size)
        noise = rng.standard_normal((size, SIGNAL_LENGTH))
        pulses = zip(shapes, positions, widths, amplitudes, noise, strict=True)
        signals = np.stack([render_pulse(*pulse, noise_scale) for pulse in pulses])
        labels = shapes.astype(np.int32) if label == "shape" else positions.astype(np.float32)
        splits += [signals, labels]
    return RealData(*splits)
