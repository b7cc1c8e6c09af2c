"""Data: the render pipeline (latents -> generated dataset) and real target datasets."""

from autosimulate_tf.data.backends import (
    InProcessBackend,
    ProcessPoolBackend,
    RayBackend,
    RenderBackend,
)
from autosimulate_tf.data.digits import uci_digits_real_data
from autosimulate_tf.data.gaussian_classes import gaussian_classes_real_data
from autosimulate_tf.data.mnist import mnist_5k_real_data
from autosimulate_tf.data.pipeline import keep_valid, render_latents
from autosimulate_tf.data.real import (
    RealData,
    sample_xor_mixture,
    xor_mixture_real_data,
)
from autosimulate_tf.data.rendering import RenderedData
from autosimulate_tf.data.scenes import scene_target_data

__all__ = [
    "InProcessBackend",
    "ProcessPoolBackend",
    "RayBackend",
    "RealData",
    "RenderBackend",
    "RenderedData",
    "gaussian_classes_real_data",
    "keep_valid",
    "mnist_5k_real_data",
    "render_latents",
    "sample_xor_mixture",
    "scene_target_data",
    "uci_digits_real_data",
    "xor_mixture_real_data",
]
