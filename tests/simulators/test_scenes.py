"""The Mitsuba 3 scene simulator: import guard, variants, renders, psi, cost, backends, learnability.

- `mitsuba_guard`: libLLVM version parsing and search (>= 17 only), and, in fresh
  subprocesses, importing TensorFlow first and then rendering (with the libLLVM found
  here, and with none: scalar_rgb); importing `autosimulate_tf.simulators` imports no Mitsuba.
- Renders: `observation_shape`, float32 in [0, 1], bit-exact for a latent, in every variant
  this machine has; another `noise_seed` gives other noise.
- psi: 21 components with bounds, the default and oracle starts, `render_cost` = spp.
- Backends: a spawn process pool (the guard runs in its workers) renders exactly what
  this process renders; Ray too (slow: a local Ray instance).
- Learnability: a CNN trained on renders classifies fresh renders well.
"""

import os
import pickle
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.data import InProcessBackend, ProcessPoolBackend, render_latents
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.models.factories import small_cnn
from autosimulate_tf.simulators import SceneSimulator, mitsuba_guard, scenes

pytestmark = pytest.mark.skipif(
    not mitsuba_guard.mitsuba_available(), reason="Mitsuba 3 is not installed (pip install 'autosimulate_tf[render]')"
)
SEED = tf.constant([4, 2])
REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHEAP_SPP_LOGITS = np.array([4.0, -4.0, -4.0, -4.0], np.float32)  # nearly always 4 spp


def cheap_simulator(**kwargs) -> SceneSimulator:
    """A simulator at the default psi that renders at 4 spp (almost always)."""
    simulator = SceneSimulator(**kwargs)
    simulator.set_constrained_parameters({"spp_choice_logits": CHEAP_SPP_LOGITS})
    return simulator


def latent_at(latents, index: int) -> dict:
    return {name: np.array(value.numpy()[index]) for name, value in latents.items()}


def available_variants() -> list[str]:
    return [mitsuba_guard.SCALAR] + ([mitsuba_guard.LLVM] if mitsuba_guard.find_libllvm() else [])


# ---- The import guard ----


@pytest.mark.parametrize(
    "path, major",
    [
        ("/usr/lib/x86_64-linux-gnu/libLLVM-19.so", 19),
        ("/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1", 19),
        ("/usr/lib/x86_64-linux-gnu/libLLVM-14.0.6.so.1", 14),
        ("/usr/lib/llvm-18/lib/libLLVM.so", 18),
        ("/usr/lib/llvm-18/lib/libLLVMSupport.a", None),
    ],
)
def test_llvm_major_version_reads_the_library_name(path, major):
    assert mitsuba_guard.llvm_major_version(path) == major


def test_find_libllvm_takes_the_newest_at_least_17(tmp_path):
    for name in ("libLLVM-15.so", "libLLVM-16.so.1", "libLLVM.so.19.1", "libLLVM-18.so", "libLLVMCore.a"):
        (tmp_path / name).touch()
    pattern = str(tmp_path / "libLLVM*")
    assert mitsuba_guard.find_libllvm([pattern]) == str(tmp_path / "libLLVM.so.19.1")
    (tmp_path / "libLLVM.so.19.1").unlink()
    (tmp_path / "libLLVM-18.so").unlink()
    assert mitsuba_guard.find_libllvm([pattern]) is None, "LLVM 15 and 16 abort the process: never use them"


GUARDED_RENDER = """
    import sys
    import tensorflow as tf  # first: the order that segfaults without the guard
    import autosimulate_tf.simulators as simulators
    from autosimulate_tf.simulators import mitsuba_guard
    assert "drjit" not in sys.modules and "mitsuba" not in sys.modules, "importing the package imported Mitsuba"
    {setup}
    mitsuba, variant = mitsuba_guard.import_mitsuba()
    simulator = simulators.SceneSimulator()
    latents = simulator.sample_latents(2, seed=tf.constant([1, 2]))
    image, label = simulator.render({{k: v.numpy()[0] for k, v in latents.items()}})
    assert image.shape == (32, 32, 3) and 0.0 <= image.min() <= image.max() <= 1.0
    print("VARIANT", variant, simulator.mitsuba_variant)
"""
GUARD_SETUPS = {"libllvm_found_here": "", "no_libllvm": "mitsuba_guard.LIBLLVM_PATTERNS = ()"}


@pytest.fixture(scope="module")
def guarded_renders():
    """`{setup name: (return code, stdout, stderr)}` of `GUARDED_RENDER` in fresh processes, run side by side."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("DRJIT_LIBLLVM_PATH", None)
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(GUARDED_RENDER.format(setup=setup))],
            cwd=REPO_DIR,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, setup in GUARD_SETUPS.items()
    }
    outputs = {name: process.communicate() for name, process in processes.items()}
    return {name: (processes[name].returncode, *outputs[name]) for name in processes}


def test_the_guard_renders_after_tensorflow_with_the_libllvm_found_here(guarded_renders):
    returncode, stdout, stderr = guarded_renders["libllvm_found_here"]
    assert returncode == 0, stderr[-3000:]
    expected = mitsuba_guard.LLVM if mitsuba_guard.find_libllvm() else mitsuba_guard.SCALAR
    assert f"VARIANT {expected} {expected}" in stdout


def test_the_guard_falls_back_to_scalar_after_tensorflow_without_libllvm(guarded_renders):
    returncode, stdout, stderr = guarded_renders["no_libllvm"]
    assert returncode == 0, stderr[-3000:]
    assert f"VARIANT {mitsuba_guard.SCALAR} {mitsuba_guard.SCALAR}" in stdout


# ---- Renders ----


@pytest.mark.parametrize("variant", available_variants())
def test_renders_have_the_declared_shape_and_range_and_are_deterministic(variant):
    simulator = SceneSimulator(variant=variant)
    assert simulator.mitsuba_variant == variant
    latents = simulator.sample_latents(4, seed=SEED)
    for index in range(4):
        latent = latent_at(latents, index)
        image, label = simulator.render(latent)
        assert image.shape == (32, 32, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01
        assert label == latent["shape"]
        again, _ = pickle.loads(pickle.dumps(simulator)).render(latent)
        np.testing.assert_array_equal(again, image)
    reseeded = {**latent, "noise_seed": np.float32(latent["noise_seed"] * 0.5)}
    assert not np.array_equal(simulator.render(reseeded)[0], image), "the noise seed must change the noise"


def test_64x64_renders():
    simulator = cheap_simulator(resolution=64, variant=mitsuba_guard.SCALAR)
    image, _ = simulator.render(latent_at(simulator.sample_latents(1, seed=SEED), 0))
    assert simulator.observation_shape == (64, 64, 3) and image.shape == (64, 64, 3)


def test_renderer_info_names_the_variant():
    info = SceneSimulator().renderer_info()
    assert info["variant"] in (mitsuba_guard.SCALAR, mitsuba_guard.LLVM)
    assert info["renderer"] == "mitsuba" and info["mitsuba_version"].startswith("3.")
    assert (info["libllvm"] is not None) == (info["variant"] == mitsuba_guard.LLVM)


# ---- psi ----


def test_psi_has_21_bounded_components_and_starts_at_the_default_or_the_oracle():
    default = SceneSimulator()
    assert len(default.parameter_names) == 21 and default.unconstrained_vector().size == 28
    assert set(default.search_space()) == set(default.parameter_names)
    for name, value in scenes.default_psi().items():
        np.testing.assert_allclose(default.constrained_parameters()[name], value, atol=1e-5, err_msg=name)
    # A mean's unconstrained variable counts default standard deviations (35 degrees / 8.66).
    unconstrained = dict(zip(default.parameter_names, default.psi_variables, strict=True))
    np.testing.assert_allclose(unconstrained["camera_elevation_mean"].numpy(), 35.0 / (30.0 / np.sqrt(12.0)), rtol=1e-5)
    oracle = SceneSimulator(start="oracle")
    for name, value in scenes.oracle_psi().items():
        np.testing.assert_allclose(oracle.constrained_parameters()[name], value, atol=1e-5, err_msg=name)
    probabilities = tf.nn.softmax(oracle.parameter("shape_logits")).numpy()
    np.testing.assert_allclose(probabilities, scenes.TARGET_SCENE_PARAMETERS["shape"], atol=1e-5)
    space = oracle.search_space()
    for name, value in scenes.oracle_psi().items():
        _, _, low, high = space[name]
        assert np.all((low <= value) & (value <= high)), (name, value, low, high)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start": "best"}, r"SceneSimulator.start='best' must be one of"),
        ({"variant": "cuda_ad_rgb"}, r"SceneSimulator.variant='cuda_ad_rgb' must be one of"),
        ({"resolution": 48}, r"SceneSimulator.resolution=48 must be one of"),
        ({"logit_bound": 1.0}, r"SceneSimulator.logit_bound=1.0 must be"),
    ],
)
def test_bad_settings_name_the_binding(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SceneSimulator(**kwargs)


def test_render_cost_is_the_samples_per_pixel():
    simulator = SceneSimulator()
    latents = simulator.sample_latents(64, seed=SEED)
    cost = simulator.render_cost(latents).numpy()
    np.testing.assert_array_equal(cost, np.asarray(scenes.SPP_CHOICES, np.float32)[latents["spp_choice"].numpy()])
    assert set(np.unique(cost)) <= set(scenes.SPP_CHOICES)


# ---- Backends ----


@pytest.mark.parametrize("variant", available_variants())
def test_a_process_pool_renders_exactly_what_this_process_renders(variant):
    simulator = cheap_simulator(variant=variant)
    latents = simulator.sample_latents(12, seed=SEED)
    local = InProcessBackend().render(simulator, latents)
    pooled = render_latents(simulator, latents, backend=ProcessPoolBackend(num_workers=2))
    for got, want in zip(pooled, local, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert np.all(np.asarray(local[2]))


@pytest.mark.slow
def test_ray_renders_exactly_what_this_process_renders():
    ray = pytest.importorskip("ray")
    from autosimulate_tf.data import RayBackend

    if ray.is_initialized():
        pytest.skip("Ray was initialised elsewhere in this process")
    simulator = cheap_simulator()
    latents = simulator.sample_latents(8, seed=SEED)
    backend = RayBackend(init_kwargs={"num_cpus": 2})
    try:
        rayed = backend.render(simulator, latents)
    finally:
        backend.close()
    for got, want in zip(rayed, InProcessBackend().render(simulator, latents), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# ---- Learnability ----


def test_a_model_trained_on_renders_tells_the_shapes_apart_on_fresh_renders():
    # Camera, light and size held nearly fixed (a CNN needs thousands of renders to learn every
    # view); material, colour and yaw vary as by default. Measured: ~0.95 after 12 epochs.
    simulator = cheap_simulator()
    narrow = {"camera_elevation": 3.0, "camera_azimuth": 20.0, "log_camera_distance": 0.02, "log_size": 0.02}
    narrow |= {"log_light_intensity": 0.05, "light_azimuth": 20.0, "light_elevation": 3.0}
    simulator.set_constrained_parameters({f"{name}_log_scale": np.log(std) for name, std in narrow.items()})
    backend = ProcessPoolBackend(num_workers=2)
    train = render_latents(simulator, simulator.sample_latents(600, seed=tf.constant([1, 1])), backend=backend)
    test = render_latents(simulator, simulator.sample_latents(200, seed=tf.constant([2, 2])), backend=backend)
    assert np.all(train.valid.numpy()) and np.all(test.valid.numpy())
    assert set(np.unique(test.labels.numpy())) == {0, 1, 2}
    model = small_cnn(input_shape=(32, 32, 3), num_outputs=3, seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(0.003),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(train.inputs, train.labels, epochs=12, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(test.inputs, test.labels, verbose=0)
    assert accuracy >= 0.85, accuracy
