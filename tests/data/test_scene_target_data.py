"""The scenes benchmark's target data: deterministic, cached, split, and not a copy of the simulator.

- A tiny target set is rendered into a temporary cache; rendering a subset of it again
  (in a spawn process pool, whose workers render on one thread) gives the same bytes,
  and a second call reads the cache without rendering.
- The cache key covers every generation setting; sizes out of range name the binding.
- The latents follow the hidden target parameters (class prior, materials, camera).
- A target image differs from the simulator's render of the same latent (the gap).
"""

import os

import numpy as np
import pytest

from autosimulate_tf.data import ProcessPoolBackend, scene_target_data
from autosimulate_tf.data import scenes as target
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.simulators import SceneSimulator, mitsuba_guard, scenes

needs_mitsuba = pytest.mark.skipif(
    not mitsuba_guard.mitsuba_available(), reason="Mitsuba 3 is not installed (pip install 'autosimulate_tf[render]')"
)
NUM_VALIDATION, NUM_TEST, SEED = 5, 3, 11


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    """`(cache folder, RealData)` of a tiny target set rendered once for this module."""
    if not mitsuba_guard.mitsuba_available():
        pytest.skip("Mitsuba 3 is not installed")
    folder = str(tmp_path_factory.mktemp("scene_cache"))
    return folder, scene_target_data(num_validation=NUM_VALIDATION, num_test=NUM_TEST, seed=SEED, cache_dir=folder)


@needs_mitsuba
def test_the_target_set_has_the_declared_shapes_and_values(tiny_cache):
    _, data = tiny_cache
    assert data.validation_inputs.shape == (NUM_VALIDATION, 32, 32, 3)
    assert data.test_inputs.shape == (NUM_TEST, 32, 32, 3)
    for images in (data.validation_inputs, data.test_inputs):
        assert images.dtype == np.float32 and 0.0 <= images.min() and images.max() <= 1.0
        np.testing.assert_array_equal(np.round(images * 255.0) / 255.0, images)  # 8-bit sensor values
    for labels in (data.validation_labels, data.test_labels):
        assert labels.dtype == np.int32 and set(labels) <= {0, 1, 2}


@needs_mitsuba
def test_a_regenerated_subset_matches_the_cache_and_the_cache_is_reused(tiny_cache):
    folder, data = tiny_cache
    path = target.cache_path(NUM_VALIDATION, NUM_TEST, SEED, folder)
    modified = os.stat(path).st_mtime_ns
    validation, test = target.split_latents(NUM_VALIDATION, NUM_TEST, SEED)
    backend = ProcessPoolBackend(num_workers=2)
    images, labels = target.render_target_images(validation, indices=[0, 3, 4], backend=backend)
    np.testing.assert_array_equal(images, np.round(data.validation_inputs[[0, 3, 4]] * 255).astype(np.uint8))
    np.testing.assert_array_equal(labels, data.validation_labels[[0, 3, 4]])
    images, _ = target.render_target_images(test, indices=[2])
    np.testing.assert_array_equal(images, np.round(data.test_inputs[[2]] * 255).astype(np.uint8))
    again = scene_target_data(num_validation=NUM_VALIDATION, num_test=NUM_TEST, seed=SEED, cache_dir=folder)
    np.testing.assert_array_equal(again.test_inputs, data.test_inputs)
    assert os.stat(path).st_mtime_ns == modified, "a cached set must be read, not rendered again"


def test_the_cache_key_covers_the_settings(tmp_path, monkeypatch):
    paths = {target.cache_path(300, 900, 0, str(tmp_path)), target.cache_path(300, 900, 1, str(tmp_path))}
    paths |= {target.cache_path(299, 900, 0, str(tmp_path)), target.cache_path(300, 901, 0, str(tmp_path))}
    monkeypatch.setattr(target, "TARGET_SPP", 64)
    paths.add(target.cache_path(300, 900, 0, str(tmp_path)))
    assert len(paths) == 5
    monkeypatch.setenv("AUTOSIMULATE_TF_CACHE", str(tmp_path / "elsewhere"))
    assert target.default_cache_dir() == str(tmp_path / "elsewhere" / "scenes")


def test_validation_latents_do_not_depend_on_the_test_size():
    small, _ = target.split_latents(20, 5, 0)
    large, _ = target.split_latents(20, 500, 0)
    for name in small:
        np.testing.assert_array_equal(small[name], large[name], err_msg=name)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_validation": 301}, r"scene_target_data.num_validation=301 must be in \[3, 300\]"),
        ({"num_validation": 2}, r"scene_target_data.num_validation=2 must be"),
        ({"num_test": 0}, r"scene_target_data.num_test=0 must be >= 1"),
    ],
)
def test_sizes_out_of_range_name_the_binding(kwargs, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        scene_target_data(cache_dir=str(tmp_path), **kwargs)


def test_the_latents_follow_the_hidden_target_parameters():
    latents = target.target_latents(20000, np.random.default_rng(0))
    for name in ("shape", "material"):
        frequencies = np.bincount(latents[name], minlength=3) / 20000
        # 4 binomial standard deviations at n = 20000 is below 0.015.
        np.testing.assert_allclose(frequencies, scenes.TARGET_SCENE_PARAMETERS[name], atol=0.015, err_msg=name)
    mean, std = scenes.TARGET_SCENE_PARAMETERS["camera_elevation"]
    assert abs(latents["camera_elevation"].mean() - mean) < 4 * std / np.sqrt(20000)
    assert set(latents) == set(SceneSimulator().sample_latents(1, seed=[0, 0]))


@needs_mitsuba
def test_a_target_image_is_not_the_simulators_render_of_its_latent():
    validation, _ = target.split_latents(2, 1, SEED)
    target_images, _ = target.render_target_images(validation)
    oracle = SceneSimulator(start="oracle", variant=mitsuba_guard.SCALAR)
    for index in range(2):
        rendered, _ = oracle.render({name: value[index] for name, value in validation.items()})
        difference = np.abs(target_images[index] / 255.0 - rendered).mean()
        assert difference > 0.02, difference
