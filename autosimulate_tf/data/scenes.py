"""The target ("real") data of the photorealistic-scenes benchmark: renders the simulator cannot copy.

`scene_target_data` plays the role real photographs play in sim-to-real: a fixed set of
labelled 32x32 RGB images of one object on a floor, class = its shape (sphere, cube,
cylinder). They are rendered once, deterministically from a seed, and cached; nothing is
downloaded. Two things separate them from the `SceneSimulator`'s renders:

1. hidden scene parameters (`scenes.TARGET_SCENE_PARAMETERS`): a low camera (10 +- 3
   degrees), a dim sun from the side, mostly metal (70%) bluish objects, a skewed class
   prior (50 / 30 / 20%). psi can express these: `scenes.oracle_psi()` is their psi.
2. rendering differences no psi can express (the sim-to-real gap): the spectral variant
   (`scalar_spectral`), 48 samples per pixel (the simulator's largest choice is 32), the
   gaussian reconstruction filter, a 37-degree lens (35 in the simulator), a warm light
   and a warm floor, a slightly taller cube (a 1 x 1 x 1.05 box) and cylinder (x 1.1), and
   a sensor: optical blur (gaussian, 0.6 px), shot and read noise in linear light, 8-bit
   output.

The latents are drawn with numpy (`np.random.default_rng`) from the hidden parameters:
the categoricals from their probabilities, the factors from Normals with their
(mean, std), in `SceneSimulator`'s latent units. Validation and test use separate
streams (`[seed, 0]`, `[seed, 1]`), so the validation images do not depend on `num_test`.

Cost: about 40 ms of one core per image (scalar_spectral, 48 spp, gaussian filter);
the default 300 + 900 images take about half a minute on 2 cores, once: the result is
stored as `<cache_dir>/<hash of every generation setting>.npz` (uint8 images; default
folder `~/.cache/autosimulate_tf/scenes`, or `$AUTOSIMULATE_TF_CACHE/scenes`).
"""

import hashlib
import importlib.metadata
import json
import os
import time

import gin
import numpy as np
from absl import logging

from autosimulate_tf.data.backends import ProcessPoolBackend
from autosimulate_tf.data.real import RealData
from autosimulate_tf.data.rendering import render_serially
from autosimulate_tf.errors import check
from autosimulate_tf.simulators import mitsuba_guard, scene_dicts, scenes
from autosimulate_tf.simulators.base import Simulator

MAX_VALIDATION = 300  # the optimiser may see at most this many target images
GENERATOR_VERSION = 1  # part of the cache key: bump when the rendering below changes
TARGET_VARIANT = "scalar_spectral"  # one fixed variant: the data must not depend on the machine
TARGET_SPP = 48
TARGET_STYLE = scene_dicts.RenderStyle(
    resolution=32,
    reconstruction_filter="gaussian",
    field_of_view=37.0,
    light_colour=(1.1, 1.0, 0.82),  # warm, about the luminance of white
    ambient_radiance=0.2,
    floor_reflectance=(0.48, 0.45, 0.41),
    cube_height=1.05,
    cylinder_height=1.1,
)
SENSOR_BLUR_PX = 0.6  # std of the gaussian optical blur
READ_NOISE = 0.006  # std of additive noise, linear units
SHOT_NOISE = 0.02  # std of signal-dependent noise is SHOT_NOISE * sqrt(linear value)
# Serial rendering in this process below this many images; above, a process pool (worker start-up: seconds).
POOL_THRESHOLD = 100


def target_latents(num_samples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`num_samples` latents (in `SceneSimulator`'s latent units) drawn from the hidden target parameters."""
    latents = {}
    for name in ("shape", "material"):
        probabilities = np.asarray(scenes.TARGET_SCENE_PARAMETERS[name], np.float64)
        latents[name] = rng.choice(len(probabilities), size=num_samples, p=probabilities).astype(np.int32)
    for factor in scenes.FACTORS:
        mean, std = scenes.TARGET_SCENE_PARAMETERS[factor.name]
        latents[factor.name] = rng.normal(mean, std, size=num_samples).astype(np.float32)
    latents["noise_seed"] = rng.random(num_samples, dtype=np.float32)
    # Unused by the target renderer (its spp is TARGET_SPP); present so every latent has the simulator's parts.
    latents["spp_choice"] = np.full(num_samples, len(scenes.SPP_CHOICES) - 1, np.int32)
    return latents


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable gaussian blur of an `[h, w, c]` image, edges extended."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(radius, radius) if a == axis else (0, 0) for a in range(3)], mode="edge")
        image = sum(taps[k] * np.take(padded, range(k, k + image.shape[axis]), axis=axis) for k in range(len(taps)))
    return image


def apply_sensor(linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A camera sensor on linear radiance: blur, shot + read noise, tonemap, 8-bit. Returns uint8 `[h, w, 3]`."""
    blurred = _gaussian_blur(linear.astype(np.float64) * TARGET_STYLE.exposure, SENSOR_BLUR_PX)
    signal = np.clip(blurred, 0.0, None)
    noise_std = np.sqrt(READ_NOISE**2 + SHOT_NOISE**2 * signal)
    noisy = signal + noise_std * rng.standard_normal(signal.shape)
    displayed = scene_dicts.tonemap(noisy.astype(np.float32))
    return np.round(displayed * 255.0).astype(np.uint8)


class TargetSceneRenderer(Simulator):
    """Renders target latents the target's way (a psi-free `Simulator`, so the render backends can run it).

    `render` returns the 8-bit sensor image as float32 `k / 255` and the shape label.
    """

    observation_shape = (TARGET_STYLE.resolution, TARGET_STYLE.resolution, 3)
    num_classes = len(scenes.SHAPES)
    render_with_tf_ops = False

    def __init__(self):
        """A renderer with no psi."""
        super().__init__(name="target_scene_renderer")

    def render(self, latent):
        """One latent -> `(float32 image in {0, 1/255, ..., 1}, int32 shape label)`."""
        description = scenes.scene_description(latent, spp=TARGET_SPP)
        with mitsuba_guard.RENDER_LOCK:
            mitsuba, _ = mitsuba_guard.import_mitsuba(TARGET_VARIANT)
            import drjit

            # The gaussian filter is bit-exact for a seed on one thread only (1e-7 differences with more).
            threads = drjit.thread_count()
            drjit.set_thread_count(1)
            try:
                linear = scene_dicts.render_linear(mitsuba, description, TARGET_STYLE)
            finally:
                drjit.set_thread_count(threads)
        sensor_rng = np.random.default_rng([description.seed, 1])
        return apply_sensor(linear, sensor_rng).astype(np.float32) / 255.0, np.int32(latent["shape"])


def render_target_images(latents: dict, indices=None, backend=None) -> tuple[np.ndarray, np.ndarray]:
    """Renders target latents (all, or those at `indices`): `(uint8 images [n, 32, 32, 3], int32 labels [n])`.

    Raises:
      RuntimeError: when a render failed (the target set must be complete).
    """
    if indices is not None:
        latents = {name: np.asarray(value)[np.asarray(indices)] for name, value in latents.items()}
    renderer = TargetSceneRenderer()
    if backend is None:
        inputs, labels, valid = render_serially(renderer, latents)
    else:
        inputs, labels, valid = (np.asarray(t) for t in backend.render(renderer, latents))
    if not np.all(valid):
        raise RuntimeError(f"{int(np.sum(~valid))} target scene render(s) failed; see the log for the reason.")
    return np.round(inputs * 255.0).astype(np.uint8), labels.astype(np.int32)


def generation_settings(num_validation: int, num_test: int, seed: int) -> dict:
    """Everything the target images depend on (the cache key)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "num_validation": num_validation,
        "num_test": num_test,
        "seed": seed,
        "parameters": scenes.TARGET_SCENE_PARAMETERS,
        "style": TARGET_STYLE._asdict(),
        "variant": TARGET_VARIANT,
        "spp": TARGET_SPP,
        "sensor": [SENSOR_BLUR_PX, READ_NOISE, SHOT_NOISE],
        "mitsuba": _installed_version("mitsuba"),
    }


def _installed_version(package: str) -> str | None:
    """The installed version of `package` (without importing it), or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def split_latents(num_validation: int, num_test: int, seed: int) -> tuple[dict, dict]:
    """The validation and test latents (independent numpy streams `[seed, 0]` and `[seed, 1]`)."""
    return (
        target_latents(num_validation, np.random.default_rng([seed, 0])),
        target_latents(num_test, np.random.default_rng([seed, 1])),
    )


def default_cache_dir() -> str:
    """`$AUTOSIMULATE_TF_CACHE/scenes`, else `~/.cache/autosimulate_tf/scenes`."""
    root = os.environ.get("AUTOSIMULATE_TF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "autosimulate_tf")
    return os.path.join(root, "scenes")


def cache_path(num_validation: int, num_test: int, seed: int, cache_dir: str | None = None) -> str:
    """Where the target set of these settings is cached."""
    settings = json.dumps(generation_settings(num_validation, num_test, seed), sort_keys=True)
    key = hashlib.sha256(settings.encode()).hexdigest()[:16]
    return os.path.join(cache_dir or default_cache_dir(), f"target_{key}.npz")


def _generate(path: str, num_validation: int, num_test: int, seed: int) -> None:
    """Renders the target set and writes it to `path` atomically (a concurrent reader never sees half a file)."""
    started = time.time()
    total = num_validation + num_test
    backend = ProcessPoolBackend() if total > POOL_THRESHOLD else None
    validation, test = split_latents(num_validation, num_test, seed)
    validation_images, validation_labels = render_target_images(validation, backend=backend)
    test_images, test_labels = render_target_images(test, backend=backend)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial.npz"
    np.savez_compressed(
        partial,
        validation_images=validation_images,
        validation_labels=validation_labels,
        test_images=test_images,
        test_labels=test_labels,
        settings=json.dumps(generation_settings(num_validation, num_test, seed), sort_keys=True),
    )
    os.replace(partial, path)
    logging.info("Rendered %d target scene images in %.1f s into %s.", total, time.time() - started, path)


@gin.configurable
def scene_target_data(
    num_validation: int = 300, num_test: int = 900, seed: int = 0, cache_dir: str | None = None
) -> RealData:
    """The scenes benchmark's target data, rendered on first use and cached.

    Args:
      num_validation: target images the optimiser may see, in `[3, 300]`.
      num_test: held-out target images for reporting, >= 1.
      seed: seed of the latents (and, through them, of every render and sensor noise).
      cache_dir: cache folder (None: `default_cache_dir()`).

    Returns:
      A `RealData` with float32 images `[n, 32, 32, 3]` in [0, 1] (multiples of 1/255) and
      int32 shape labels `[n]` (0 sphere, 1 cube, 2 cylinder).

    Raises:
      ConfigError: sizes out of range.
    """
    check(
        3 <= num_validation <= MAX_VALIDATION,
        f"scene_target_data.num_validation={num_validation} must be in [3, {MAX_VALIDATION}]: at most "
        f"{MAX_VALIDATION} target images for the optimiser.",
    )
    check(num_test >= 1, f"scene_target_data.num_test={num_test} must be >= 1.")
    path = cache_path(num_validation, num_test, seed, cache_dir)
    if not os.path.exists(path):
        logging.info("Rendering the scene target set (%d images, once) into %s.", num_validation + num_test, path)
        _generate(path, num_validation, num_test, seed)
    with np.load(path) as stored:
        arrays = {
            name: stored[name] for name in ("validation_images", "validation_labels", "test_images", "test_labels")
        }
    return RealData(
        arrays["validation_images"].astype(np.float32) / 255.0,
        arrays["validation_labels"].astype(np.int32),
        arrays["test_images"].astype(np.float32) / 255.0,
        arrays["test_labels"].astype(np.int32),
    )
