"""The comparison's PNG plots: the validation score against samples and time, and psi trajectories.

The score is the target's (`baselines/score.py`): validation accuracy for
classification, validation loss (log scale) for regression. The psi plot has one panel
per method (its first seed), one labelled line per psi component, or per psi factor
(all its components in one colour) when there are too many components to label; with
many labels the panels share one legend below them.
"""

import os

import numpy as np

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import Target

# Above this many psi components a panel labels factors (`means`) instead of components (`means[0, 1]`).
MAX_LABELLED_COMPONENTS = 10
# Above this many legend entries the panels share one legend below them: inside a panel it
# would cover the lines (the 22 factors of the digits simulator fill a panel's height).
MAX_PANEL_LEGEND_ENTRIES = 8
_SHARED_LEGEND_COLUMNS = 6
_LEGEND_ROW_INCHES = 0.22
_DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, figure, path: str, bottom: float = 0.0) -> str:
    """Lays `figure` out above its lowest `bottom` fraction (room for a shared legend), writes and closes it."""
    figure.tight_layout(rect=(0, bottom, 1, 1))
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)
    return path


def _score_axis_label(target: Target, scoring: str) -> str:
    if scoring == "referee":
        return f"{target.score.label} (referee)"
    return f"{target.score.label} (best so far for search methods)"


def plot_score_against(root_dir: str, runs: dict, target: Target, scoring: str, cost: str) -> str:
    """One plot of every run's validation score against cumulative `cost` (log x); returns its path."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for index, (method, method_runs) in enumerate(runs.items()):
        for seed_index, run in enumerate(method_runs):
            xs = [max(point[cost], 1e-3) for point in run["curve"]]
            ys = [point[target.score.key] for point in run["curve"]]
            style = "o" if len(xs) == 1 else "-"
            axes.plot(xs, ys, style, color=f"C{index}", alpha=0.8, label=method if seed_index == 0 else None)
    axes.axhline(target.value, color="gray", linestyle="--", linewidth=1, label=f"target {target.value}")
    axes.set_xscale("log")
    if not target.score.higher_is_better:
        axes.set_yscale("log")
    axes.set_xlabel(("simulated samples" if cost == schema.SIMULATED_SAMPLES else "wall-clock (s)") + " (log scale)")
    axes.set_ylabel(_score_axis_label(target, scoring))
    axes.legend(fontsize=8)
    name = "samples" if cost == schema.SIMULATED_SAMPLES else "time"
    return _save(plt, figure, os.path.join(root_dir, f"{target.score.name}_vs_{name}.png"))


def psi_lines(curve: list[dict]) -> list[tuple[str, str, np.ndarray]]:
    """`(factor, label, values over the curve)` for every psi component of a curve.

    Components are labelled `factor[i, j]` (`factor` for a scalar) when there are at most
    `MAX_LABELLED_COMPONENTS` in all; otherwise only a factor's first component carries a
    label, the factor's name.
    """
    names = list(curve[0][schema.PSI])
    values = {name: np.array([np.ravel(point[schema.PSI][name]) for point in curve]) for name in names}
    shapes = {name: np.shape(curve[0][schema.PSI][name]) for name in names}
    label_components = sum(values[name].shape[1] for name in names) <= MAX_LABELLED_COMPONENTS
    lines = []
    for name in names:
        for flat_index, index in enumerate(np.ndindex(*shapes[name])):
            if label_components:
                label = f"{name}[{', '.join(map(str, index))}]" if index else name
            else:
                label = name if flat_index == 0 else None
            lines.append((name, label, values[name][:, flat_index]))
    return lines


def _factor_colour(plt, factors: list[str], factor: str):
    """A colour per factor, distinct for up to 20 factors (tab20), spread over a continuous map beyond."""
    index = factors.index(factor)
    if len(factors) <= 10:
        return f"C{index}"
    if len(factors) <= 20:
        return plt.get_cmap("tab20")(index)
    return plt.get_cmap("turbo")(index / (len(factors) - 1))


def plot_psi_trajectories(root_dir: str, runs: dict) -> str:
    """psi (constrained) against simulated samples, one panel per tuning method (first seed); returns the path."""
    plt = _pyplot()
    tuned = {method: method_runs[0] for method, method_runs in runs.items() if method != "default" and method_runs}
    lines_by_method = {method: psi_lines(run["curve"]) for method, run in tuned.items()}
    num_labels = max((sum(label is not None for _, label, _ in lines) for lines in lines_by_method.values()), default=0)
    shared_legend = num_labels > MAX_PANEL_LEGEND_ENTRIES
    legend_rows = -(-num_labels // _SHARED_LEGEND_COLUMNS) if shared_legend else 0
    figure, panels = plt.subplots(
        1,
        max(len(tuned), 1),
        figsize=(4.5 * max(len(tuned), 1), 4.0 + _LEGEND_ROW_INCHES * legend_rows),
        squeeze=False,
        sharey=True,
    )
    for axes, (method, run) in zip(panels[0], tuned.items(), strict=False):
        xs = [max(point[schema.SIMULATED_SAMPLES], 1e-3) for point in run["curve"]]
        lines = lines_by_method[method]
        factors = list(dict.fromkeys(factor for factor, _, _ in lines))
        for index, (factor, label, values) in enumerate(lines):
            color = f"C{index % 10}" if len(lines) <= MAX_LABELLED_COMPONENTS else _factor_colour(plt, factors, factor)
            axes.plot(xs, values, "o" if len(xs) == 1 else "-", color=color, alpha=0.7, label=label)
        axes.set_xscale("log")
        axes.set_xlabel("simulated samples (log scale)")
        axes.set_title(method)
        # A simulator without psi components has nothing to label.
        if axes.get_legend_handles_labels()[0] and not shared_legend:
            axes.legend(fontsize=7)
    panels[0][0].set_ylabel("psi (constrained; first seed)")
    path = os.path.join(root_dir, "psi_trajectories.png")
    if not shared_legend:
        return _save(plt, figure, path)
    # Every panel plots the same simulator's factors in the same colours: one legend serves all.
    handles, labels = panels[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=_SHARED_LEGEND_COLUMNS, fontsize=7, frameon=False)
    return _save(plt, figure, path, bottom=_LEGEND_ROW_INCHES * legend_rows / figure.get_figheight() + 0.02)


def write_plots(root_dir: str, runs: dict, target: Target, scoring: str = "method") -> list[str]:
    """Writes the score-vs-samples, score-vs-time and psi plots into `root_dir`; returns their paths."""
    return [
        plot_score_against(root_dir, runs, target, scoring, schema.SIMULATED_SAMPLES),
        plot_score_against(root_dir, runs, target, scoring, schema.WALL_CLOCK_S),
        plot_psi_trajectories(root_dir, runs),
    ]
