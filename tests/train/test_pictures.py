"""The run's pictures: sample grids (grey and RGB) and psi trajectories."""

import types

import numpy as np
from PIL import Image

from autosimulate_tf.train import pictures


def test_image_simulators_are_2d_grey_or_rgb_observations():
    def simulator(shape):
        return types.SimpleNamespace(observation_shape=shape)

    assert pictures.is_image_simulator(simulator((8, 8)))
    assert pictures.is_image_simulator(simulator((28, 28, 1)))
    assert pictures.is_image_simulator(simulator((32, 32, 3)))
    assert not pictures.is_image_simulator(simulator((2,)))
    assert not pictures.is_image_simulator(simulator((32, 32, 4)))


def test_sample_grid_draws_rgb_in_colour_and_grey_in_grey(tmp_path):
    red = np.zeros((4, 8, 8, 3), np.float32)
    red[..., 0] = 1.0
    grey = np.full((4, 8, 8), 8.0, np.float32)
    pixels = pictures.write_sample_grid(
        str(tmp_path / "grid.png"), [("target", red, np.arange(4)), ("initial psi", grey, np.arange(4))], columns=4
    )
    assert (tmp_path / "grid.png").stat().st_size > 1000
    top, bottom = pixels[: pixels.shape[0] // 2], pixels[pixels.shape[0] // 2 :]
    reddish = (top[..., 0] > 200) & (top[..., 1] < 60) & (top[..., 2] < 60)
    assert reddish.mean() > 0.05  # the RGB band is drawn in its colours
    channels = bottom.astype(int)
    assert np.abs(channels[..., 0] - channels[..., 1]).max() < 10  # the grey band has no colour


def test_psi_plot_with_many_factors_is_a_grid_not_one_tall_column(tmp_path):
    trajectory = [{"iteration": i, **{f"factor_{k}": [0.1 * i * k, -0.1 * i] for k in range(12)}} for i in range(5)]
    pictures.write_psi_plot(str(tmp_path / "psi.png"), trajectory)
    width, height = Image.open(tmp_path / "psi.png").size
    assert width > height  # 12 panels in 3 columns of 4 rows
    pictures.write_psi_plot(str(tmp_path / "psi_few.png"), [{"iteration": 0, "means": [1.0, 2.0]}])
    width, height = Image.open(tmp_path / "psi_few.png").size
    assert height < width
