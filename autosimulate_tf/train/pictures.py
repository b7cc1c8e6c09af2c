"""Pictures people want to see: rendered samples next to real data, and psi over time."""

import json
import math
import os

import numpy as np
import tensorflow as tf

from autosimulate_tf.data import pipeline


def is_image_simulator(simulator) -> bool:
    """True when observations are 2-D images, or images with one (grey) or three (RGB) channels."""
    shape = tuple(simulator.observation_shape)
    return len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3))


def render_examples(simulator, num_examples: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """`num_examples` rendered observations and labels at the current psi (invalid ones dropped)."""
    latents = simulator.sample_latents(num_examples, seed=seed)
    inputs, labels, _, _ = pipeline.keep_valid(pipeline.render_latents(simulator, latents), latents)
    return inputs.numpy(), labels.numpy()


def write_sample_grid(path: str, rows: list[tuple[str, np.ndarray, np.ndarray]], columns: int = 20) -> np.ndarray:
    """Writes a PNG with one titled band of images per entry of `rows`; returns the RGB array.

    Args:
      path: output PNG path.
      rows: `(title, images [n, h, w(, 1 or 3)], labels [n])` per band: grey images are drawn
        dark on light, RGB images (values in [0, 1]) as they are.
      columns: images per band.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.6, len(rows) * 0.85))
    axes = np.atleast_2d(axes)
    for row, (title, images, labels) in enumerate(rows):
        for column in range(columns):
            axis = axes[row, column]
            axis.set_xticks([])
            axis.set_yticks([])
            if column < len(images):
                _show_image(axis, images[column])
                axis.set_title(str(int(labels[column])), fontsize=6, pad=1)
        axes[row, 0].set_ylabel(title, fontsize=6, rotation=0, ha="right", va="center")
    # Leave room on the left for the band titles (horizontal y-labels are outside the axes).
    figure.tight_layout(pad=0.2, rect=(0.07, 0.0, 1.0, 1.0))
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pixels


def _show_image(axis, image: np.ndarray) -> None:
    """Draws one observation: RGB as is (clipped to [0, 1]), a grey image dark on light."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        axis.imshow(np.clip(image, 0.0, 1.0))
    else:
        axis.imshow(np.squeeze(image), cmap="gray_r", vmin=0)


def write_psi_plot(path: str, trajectory: list[dict]) -> None:
    """Plots every constrained psi component against the outer iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not trajectory:
        return
    names = [name for name in trajectory[0] if name != "iteration"]
    widest = max(np.size(trajectory[0][name]) for name in names)
    # One panel per factor; many factors go into a grid of three columns rather than one tall column.
    columns = 1 if len(names) <= 4 else 3
    rows = math.ceil(len(names) / columns)
    panel_width = 5 + 1.2 * math.ceil(widest / 8)
    figure, axes = plt.subplots(rows, columns, figsize=(panel_width * columns, 2.2 * rows), squeeze=False)
    for axis in axes.flat[len(names) :]:
        axis.set_visible(False)
    iterations = [entry["iteration"] for entry in trajectory]
    for axis, name in zip(axes.flat, names, strict=False):
        values = np.array([np.ravel(entry[name]) for entry in trajectory])
        count = values.shape[1]
        shape = np.shape(trajectory[0][name])
        labels = [name] if count == 1 else [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]
        for column, label in enumerate(labels):
            axis.plot(iterations, values[:, column], linewidth=1, label=label)
        # One labelled line per component; a factor with many components gets a compact legend.
        axis.legend(fontsize=6, ncol=max(1, math.ceil(count / 8)), loc="center left", bbox_to_anchor=(1.01, 0.5))
        axis.set_title(f"{name} ({count} component{'s' if count > 1 else ''})", fontsize=8)
        axis.set_xlabel("outer iteration", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


class PsiTrajectory:
    """psi per outer iteration in `<root_dir>/psi_trajectory.jsonl`, consistent across restarts."""

    def __init__(self, root_dir: str, restored_iteration: int):
        self.path = os.path.join(root_dir, "psi_trajectory.jsonl")
        self.entries = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.entries = [json.loads(line) for line in f if line.strip()]
        # Entries written after the restored checkpoint belong to work that is redone now.
        kept = [entry for entry in self.entries if entry["iteration"] <= restored_iteration]
        if len(kept) != len(self.entries):  # A finished run re-run rewrites nothing.
            with open(self.path, "w") as f:
                f.writelines(json.dumps(entry) + "\n" for entry in kept)
        self.entries = kept

    def append(self, iteration: int, psi: dict) -> None:
        """Records psi after `iteration`."""
        entry = {"iteration": iteration, **psi}
        self.entries.append(entry)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def image_summary(writer, name: str, pixels: np.ndarray, step: int) -> None:
    """Writes an RGB array to TensorBoard."""
    with writer.as_default():
        tf.summary.image(name, pixels[None], step=step)
