"""Photorealistic scenes: a Mitsuba 3 path tracer whose scene distribution is psi (DESIGN.md section 5).

The paper's regime: a non-differentiable, costly renderer. A latent describes one
CLEVR-like scene (`scene_dicts`): which object (sphere, cube, capped cylinder: the
class label), its material (diffuse, plastic, metal), colour, size and yaw, the sun's
intensity and direction, the camera's elevation, azimuth and distance, and the render
quality (samples per pixel). `render` builds the scene as a Python dict, path-traces it
with Mitsuba 3 and tonemaps it: a 32x32x3 float32 RGB image in [0, 1]. The task is to
classify the object's shape (3 classes); material, colour, light and camera are
nuisances whose distribution decides how well a model trained on renders transfers.

The real data of this benchmark (`autosimulate_tf.data.scenes.scene_target_data`) are
rendered from hidden scene parameters (`TARGET_SCENE_PARAMETERS`) with rendering
differences no psi can express; `oracle_psi()` is the psi of those hidden parameters.

Cost per image on one core, measured with this scene (3 bounces, box filter, scene
building included), at 4 / 8 / 16 / 32 spp: 32x32 scalar_rgb 5 / 9 / 18 / 34 ms,
llvm_ad_rgb 5 / 6 / 9 / 12 ms; 64x64 scalar_rgb 19 / 31 / 56 / 103 ms, llvm_ad_rgb
7 / 10 / 23 / 37 ms. The untuned default's mix of spp (mean 15) costs about 17 ms (scalar)
or 8 ms (llvm) an image at 32x32, the recommended resolution. `render_cost` reports
samples per pixel as each latent's cost proxy (scalar time is about linear in spp; llvm
has a larger fixed part per image).

Mitsuba is imported lazily, through `mitsuba_guard.import_mitsuba`, inside `render`:
importing this module does not import Mitsuba, and render workers (which import
TensorFlow first) go through the same guard.
"""

import math
from typing import NamedTuple

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from absl import logging

from autosimulate_tf.errors import check
from autosimulate_tf.simulators import mitsuba_guard, scene_dicts
from autosimulate_tf.simulators.base import Simulator

tfb = tfp.bijectors
tfd = tfp.distributions

SHAPES = scene_dicts.SHAPES
MATERIALS = scene_dicts.MATERIALS
SPP_CHOICES = (4, 8, 16, 32)  # render quality: the categorical latent `spp_choice` indexes this
RESOLUTIONS = (32, 64)
STARTS = ("default", "oracle")
SEED_BITS = 22  # Mitsuba's scalar variants use only the low 22 bits of a render seed


class Factor(NamedTuple):
    """One continuous scene factor: `latent ~ Normal(mean, exp(log_scale))`, mean and log_scale in psi.

    The untuned default matches the first two moments of a uniform distribution on
    `default_range` in natural units, or on its logs for a positive factor whose latent
    is its log (`log_space=True`).
    """

    name: str
    unit: str  # of the natural value
    default_range: tuple  # the hand-set (low, high), natural units
    log_space: bool
    mean_bounds: tuple  # search box of the mean, latent units
    scale_bounds: tuple  # search box of exp(log_scale), latent units
    clip: tuple | None  # the renderer clips the natural value to this (None: angles, which wrap)


_ln = math.log
FACTORS = (
    Factor("hue", "turns of the colour wheel (wraps)", (0.0, 1.0), False, (0.0, 1.0), (0.01, 0.5), None),
    Factor(
        "log_size", "half-extent r, floor units", (0.35, 0.6), True, (_ln(0.25), _ln(0.8)), (0.01, 0.5), (0.15, 1.0)
    ),
    Factor("yaw", "degrees about the vertical", (0.0, 90.0), False, (-45.0, 135.0), (1.0, 60.0), None),
    Factor("log_light_intensity", "sun irradiance", (1.5, 5.0), True, (_ln(0.3), _ln(10.0)), (0.01, 1.0), (0.05, 30)),
    Factor("light_elevation", "degrees above the horizon", (30.0, 70.0), False, (5.0, 85.0), (1.0, 30.0), (2, 89)),
    Factor("light_azimuth", "degrees", (0.0, 360.0), False, (0.0, 360.0), (1.0, 150.0), None),
    Factor("camera_elevation", "degrees above the horizon", (20.0, 50.0), False, (3.0, 80.0), (0.5, 30.0), (2, 85)),
    Factor("camera_azimuth", "degrees", (0.0, 360.0), False, (0.0, 360.0), (1.0, 150.0), None),
    Factor("log_camera_distance", "floor units", (3.5, 5.0), True, (_ln(2.5), _ln(8.0)), (0.01, 0.5), (2.0, 12.0)),
)
FACTOR_NAMES = tuple(factor.name for factor in FACTORS)
CATEGORICALS = {"shape": SHAPES, "material": MATERIALS, "spp_choice": SPP_CHOICES}

# The hidden parameters of the target ("real") scenes, in latent units: probabilities of the
# categoricals, (mean, std) of the factors. Low camera, dim light from the side, mostly metal
# bluish objects, a skewed class prior; their renderer differs further (data/scenes.py).
TARGET_SCENE_PARAMETERS = {
    "shape": (0.5, 0.3, 0.2),
    "material": (0.1, 0.2, 0.7),
    "hue": (0.6, 0.08),
    "log_size": (_ln(0.5), 0.1),
    "yaw": (20.0, 10.0),
    "log_light_intensity": (_ln(1.2), 0.15),
    "light_elevation": (25.0, 5.0),
    "light_azimuth": (120.0, 20.0),
    "camera_elevation": (10.0, 3.0),
    "camera_azimuth": (200.0, 40.0),
    "log_camera_distance": (_ln(4.5), 0.08),
}
TARGET_SPP = 64  # beyond SPP_CHOICES: the oracle puts nearly all mass on the largest choice
ORACLE_SPP_LOGITS = (-3.0, -3.0, -3.0, 3.0)


def default_factor_moments(factor: Factor) -> tuple[float, float]:
    """`(mean, std)` of the untuned default of `factor`, in latent units (uniform-moment matching)."""
    low, high = factor.default_range
    if factor.log_space:
        low, high = math.log(low), math.log(high)
    return 0.5 * (low + high), (high - low) / math.sqrt(12.0)


def default_psi() -> dict[str, np.ndarray]:
    """The untuned default psi (constrained): uniform categoricals, uniform-moment-matched factors."""
    psi = {f"{name}_logits": np.zeros(len(choices), np.float32) for name, choices in CATEGORICALS.items()}
    for factor in FACTORS:
        mean, std = default_factor_moments(factor)
        psi[f"{factor.name}_mean"] = np.float32(mean)
        psi[f"{factor.name}_log_scale"] = np.float32(math.log(std))
    return psi


def oracle_psi() -> dict[str, np.ndarray]:
    """The psi of the hidden target parameters (constrained): the best tuning can do, up to the rendering gap."""
    psi = {
        "shape_logits": np.log(np.asarray(TARGET_SCENE_PARAMETERS["shape"], np.float32)),
        "material_logits": np.log(np.asarray(TARGET_SCENE_PARAMETERS["material"], np.float32)),
        "spp_choice_logits": np.asarray(ORACLE_SPP_LOGITS, np.float32),
    }
    for factor in FACTORS:
        mean, std = TARGET_SCENE_PARAMETERS[factor.name]
        psi[f"{factor.name}_mean"] = np.float32(mean)
        psi[f"{factor.name}_log_scale"] = np.float32(math.log(std))
    return psi


def render_seed(noise_seed) -> int:
    """Mitsuba's sampler seed from the psi-free `noise_seed` latent.

    The float32 bit pattern of `noise_seed` is hashed (murmur3's finaliser) into the low
    `SEED_BITS` bits: Mitsuba's scalar variants ignore the higher bits of a seed, and
    without the hash two latents whose floats share a mantissa (x and x / 2) would share
    their noise.
    """
    value = int(np.asarray(noise_seed, np.float32).view(np.uint32))
    for shift, multiplier in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        value = ((value ^ (value >> shift)) * multiplier) & 0xFFFFFFFF
    return (value ^ (value >> 16)) & ((1 << SEED_BITS) - 1)


def scene_description(latent, spp: int | None = None) -> scene_dicts.SceneDescription:
    """One latent (dict of numpy scalars, latent units) -> the scene in clipped natural units.

    Args:
      latent: a value for `shape`, `material`, `spp_choice`, every factor and `noise_seed`.
      spp: samples per pixel overriding the latent's `spp_choice` (the target renderer's).
    """
    values = {}
    for factor in FACTORS:
        value = float(latent[factor.name])
        if factor.log_space:
            value = math.exp(min(value, 50.0))  # clip before exp: a wild log value must not overflow
        if factor.clip is not None:
            value = min(max(value, factor.clip[0]), factor.clip[1])
        values[factor.name.removeprefix("log_")] = value
    choice = int(np.clip(int(latent["spp_choice"]), 0, len(SPP_CHOICES) - 1))
    return scene_dicts.SceneDescription(
        shape=int(latent["shape"]),
        material=int(latent["material"]),
        spp=int(spp or SPP_CHOICES[choice]),
        seed=render_seed(latent["noise_seed"]),
        **values,
    )


def render_scene(description, style, variant: str) -> np.ndarray:
    """Renders one scene with Mitsuba (imported through the guard) and tonemaps it: `[r, r, 3]` float32 in [0, 1]."""
    with mitsuba_guard.RENDER_LOCK:
        mitsuba, _ = mitsuba_guard.import_mitsuba(variant)
        linear = scene_dicts.render_linear(mitsuba, description, style)
    return scene_dicts.tonemap(linear, style.exposure)


@gin.configurable
class SceneSimulator(Simulator):
    """One CLEVR-like object on a floor, path-traced by Mitsuba 3; psi is the scene distribution.

    Latent (one `tfd.JointDistributionNamed`):

    - `shape ~ Categorical(shape_logits)`: sphere, cube, cylinder; the class label;
    - `material ~ Categorical(material_logits)`: diffuse, plastic, metal;
    - `spp_choice ~ Categorical(spp_choice_logits)`: samples per pixel `SPP_CHOICES[spp_choice]`
      (4, 8, 16, 32): render quality, with its cost (`render_cost`);
    - for each factor in `FACTORS`, `factor ~ Normal(<factor>_mean, exp(<factor>_log_scale))`;
    - `noise_seed ~ Uniform(0, 1)`, psi-free: Mitsuba's sampler seed (its float32 bits).

    psi: 21 components, 28 numbers, all with search bounds: `shape_logits` [3],
    `material_logits` [3], `spp_choice_logits` [4] (logits in `[-logit_bound, logit_bound]`),
    and `<factor>_mean`, `<factor>_log_scale` for the nine factors. Constrained values
    (and bounds) are in latent units; a mean's unconstrained variable is the mean divided
    by the factor's default standard deviation (a `Scale` bijector), so that the outer
    optimiser's step, and a policy's noise over the unconstrained vector, are alike for
    every factor whatever its unit.

    The untuned default (`start="default"`) is a practitioner's hand-set choice, fixed
    before looking at the target: every category equally likely, and each factor "uniform
    on a range" matched by the Normal with its mean and standard deviation:

    ===================  ===========================  ==============  ======  ======
    factor               natural unit                 hand-set range  mean    std
    ===================  ===========================  ==============  ======  ======
    hue                  turns (wraps)                0 .. 1          0.5     0.289
    log_size             half-extent r, floor units   0.35 .. 0.6     -0.780  0.156
    yaw                  degrees                      0 .. 90         45      26.0
    log_light_intensity  sun irradiance               1.5 .. 5        1.007   0.348
    light_elevation      degrees above the horizon    30 .. 70        50      11.5
    light_azimuth        degrees                      0 .. 360        180     103.9
    camera_elevation     degrees above the horizon    20 .. 50        35      8.66
    camera_azimuth       degrees                      0 .. 360        180     103.9
    log_camera_distance  floor units                  3.5 .. 5        1.431   0.103
    ===================  ===========================  ==============  ======  ======

    `start="oracle"` starts at `oracle_psi()`, the hidden parameters of the target data:
    the reference "best psi tuning can reach, up to the rendering gap".

    Rendering (numpy out, `render_with_tf_ops = False`): `scene_description` clips natural
    values so that no psi breaks a render; the box reconstruction filter makes a render
    bit-exact for its latent (across repeats, processes and thread counts). The Mitsuba
    variant is `variant` ("auto": llvm_ad_rgb when a libLLVM >= 17 is found, else
    scalar_rgb; `mitsuba_variant` says which); the two variants draw different random
    numbers, so renders of one latent differ between them pixel by pixel (same mean).
    """

    num_classes = len(SHAPES)
    observation_dtype = np.float32
    render_with_tf_ops = False

    def __init__(
        self,
        start: str = "default",
        variant: str = mitsuba_guard.AUTO,
        resolution: int = 32,
        logit_bound: float = 4.0,
        name: str = "scenes",
    ):
        """Builds the simulator at the default or the oracle psi.

        Args:
          start: `"default"` (the hand-set untuned psi) or `"oracle"` (`oracle_psi()`).
          variant: Mitsuba variant, `"auto"`, `"scalar_rgb"` or `"llvm_ad_rgb"`.
          resolution: image side, 32 (5-34 ms an image on one core, by spp) or 64 (about three times that).
          logit_bound: search box `[-logit_bound, logit_bound]` of the categorical logits.
          name: module name.

        Raises:
          ConfigError: naming the binding of a setting out of range.
        """
        super().__init__(name=name)
        check(start in STARTS, f"SceneSimulator.start={start!r} must be one of {STARTS}.")
        check(
            variant in mitsuba_guard.VARIANTS,
            f"SceneSimulator.variant={variant!r} must be one of {mitsuba_guard.VARIANTS}.",
        )
        check(resolution in RESOLUTIONS, f"SceneSimulator.resolution={resolution} must be one of {RESOLUTIONS}.")
        check(
            bool(np.isfinite(logit_bound) and logit_bound >= 3.0),
            f"SceneSimulator.logit_bound={logit_bound} must be a finite number >= 3 (the oracle's logits lie in [-3, 3]).",
        )
        self.start = start
        self.variant = variant
        self.observation_shape = (resolution, resolution, 3)
        self.style = scene_dicts.SIMULATOR_STYLE._replace(resolution=resolution)
        initial = oracle_psi() if start == "oracle" else default_psi()
        for name_ in CATEGORICALS:
            self.add_parameter(f"{name_}_logits", initial[f"{name_}_logits"], bounds=(-logit_bound, logit_bound))
        for factor in FACTORS:
            # One unconstrained unit of a mean is one default standard deviation of its factor, so a
            # psi step moves a camera angle in degrees as far, relatively, as a log-size or a hue.
            _, default_std = default_factor_moments(factor)
            self.add_parameter(
                f"{factor.name}_mean",
                initial[f"{factor.name}_mean"],
                bijector=tfb.Scale(np.float32(default_std)),
                bounds=factor.mean_bounds,
            )
            low, high = factor.scale_bounds
            self.add_parameter(
                f"{factor.name}_log_scale", initial[f"{factor.name}_log_scale"], bounds=(math.log(low), math.log(high))
            )
        self._resolved_variant = None

    @property
    def mitsuba_variant(self) -> str:
        """The Mitsuba variant this simulator renders with ("scalar_rgb" or "llvm_ad_rgb"); imports Mitsuba."""
        if self._resolved_variant is None:
            object.__setattr__(self, "_resolved_variant", mitsuba_guard.resolve_variant(self.variant))
            logging.info(
                "SceneSimulator renders with Mitsuba variant %s (SceneSimulator.variant=%r; libLLVM: %s).",
                self._resolved_variant,
                self.variant,
                mitsuba_guard.libllvm_path(),
            )
        return self._resolved_variant

    def renderer_info(self) -> dict:
        """What renders the images, for logs and `results.json`: renderer, version, variant, libLLVM."""
        variant = self.mitsuba_variant
        mitsuba, _ = mitsuba_guard.import_mitsuba(variant)
        return {
            "renderer": "mitsuba",
            "mitsuba_version": mitsuba.__version__,
            "variant": variant,
            "libllvm": mitsuba_guard.libllvm_path(),
            "resolution": self.observation_shape[0],
        }

    def __getstate__(self):
        """Pins the variant resolved here, so every render worker renders with the driver's variant."""
        _ = self.mitsuba_variant  # resolves and caches it before the state is copied
        return super().__getstate__()

    def latent_distribution(self):
        """The joint latent distribution described in the class docstring."""
        components = {name: tfd.Categorical(logits=self.parameter(f"{name}_logits")) for name in CATEGORICALS}
        for factor in FACTORS:
            components[factor.name] = tfd.Normal(
                self.parameter(f"{factor.name}_mean"), tf.exp(self.parameter(f"{factor.name}_log_scale"))
            )
        components["noise_seed"] = tfd.Uniform(tf.constant(0.0, tf.float32), 1.0)
        return tfd.JointDistributionNamed(components)

    def render_cost(self, latents) -> tf.Tensor:
        """`[n]` float32 render cost of each latent, in samples per pixel (render time is about linear in spp)."""
        return tf.gather(tf.constant(SPP_CHOICES, tf.float32), tf.cast(latents["spp_choice"], tf.int32))

    def render(self, latent):
        """Renders one latent (dict of numpy scalars) to `(H x W x 3 float32 image in [0, 1], int32 shape label)`."""
        image = render_scene(scene_description(latent), self.style, self.mitsuba_variant)
        return image, np.int32(latent["shape"])
