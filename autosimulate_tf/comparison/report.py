"""Summaries, ratios, the printed table and the plots of a comparison."""

import math
import os
import statistics

COSTS = ("samples", "time_s", "objective_evaluations")


def first_reaching(curve: list[dict], target: float) -> dict | None:
    """The first curve point whose validation accuracy reaches `target`, or None."""
    return next((point for point in curve if point["val_accuracy"] >= target), None)


def summarize_run(run: dict, target: float) -> dict:
    """Costs to target (None when never reached), totals and final accuracies of one run."""
    curve = run["curve"]
    hit = first_reaching(curve, target)
    last = curve[-1]
    summary = {
        "reached_target": hit is not None,
        "samples_to_target": hit["samples"] if hit else None,
        "time_to_target_s": hit["time_s"] if hit else None,
        "objective_evals_to_target": hit["objective_evaluations"] if hit else None,
        "final_val_accuracy": last["val_accuracy"],
        "final_test_accuracy": last["test_accuracy"],
        "total_samples": last["samples"],
        "total_time_s": last["time_s"],
        "total_objective_evaluations": last["objective_evaluations"],
        "total_model_steps": last["model_steps"],
        "total_hvps": last["hvps"],
        "final_psi": last["psi"],
    }
    for key in ("hypergradient_overhead_fraction",):
        if key in run:
            summary[key] = run[key]
    return summary


def _median_or_censored(values: list) -> tuple[float | None, bool]:
    """Median treating None (never reached) as +inf; returns (value or None, censored)."""
    ordered = sorted(math.inf if v is None else v for v in values)
    median = statistics.median(ordered)
    return (None, True) if math.isinf(median) else (median, False)


def summarize_method(runs: list[dict], target: float) -> dict:
    """Medians over seeds. A median that is a never-reached run is reported as None,
    with `<cost>_lower_bound` = the median budget actually spent (the method needs more)."""
    per_seed = [summarize_run(run, target) for run in runs]
    summary = {
        "seeds": per_seed,
        "fraction_reaching_target": sum(s["reached_target"] for s in per_seed) / len(per_seed),
    }
    for cost, key in (
        ("samples", "samples_to_target"),
        ("time_s", "time_to_target_s"),
        ("objective_evaluations", "objective_evals_to_target"),
    ):
        median, censored = _median_or_censored([s[key] for s in per_seed])
        summary[key] = median
        if censored:
            totals = sorted(s[f"total_{cost}"] for s in per_seed)
            summary[f"{key}_lower_bound"] = statistics.median(totals)
    for key in (
        "final_val_accuracy",
        "final_test_accuracy",
        "total_samples",
        "total_time_s",
        "total_model_steps",
        "total_hvps",
        "total_objective_evaluations",
    ):
        summary[key] = statistics.median(s[key] for s in per_seed)
    if "hypergradient_overhead_fraction" in per_seed[0]:
        summary["hypergradient_overhead_fraction"] = statistics.median(
            s["hypergradient_overhead_fraction"] for s in per_seed
        )
    return summary


def ratios_to_reference(summaries: dict, reference: str) -> dict:
    """For every other method: its median cost to target divided by the reference's.

    A method that did not reach the target (censored median) gets `">= x"` with x
    computed from the budget it spent: the true ratio is at least that.
    """
    ratios = {}
    base = summaries[reference]
    for method, summary in summaries.items():
        if method == reference:
            continue
        ratios[method] = {}
        for key in ("samples_to_target", "time_to_target_s", "objective_evals_to_target"):
            if base[key] is None:
                ratios[method][key] = None
            elif summary[key] is not None:
                ratios[method][key] = summary[key] / base[key]
            else:
                ratios[method][key] = f">= {summary[key + '_lower_bound'] / base[key]:.3g}"
    return ratios


def samples_to_match_final(runs: dict, reference: str) -> dict:
    """For each other method: samples the reference and the method need to reach the method's final accuracy.

    The target is the method's median final validation accuracy; costs are medians over
    seeds of the first curve point reaching it (None when a median run never does).
    """
    matches = {}
    for method, method_runs in runs.items():
        if method == reference:
            continue
        target = statistics.median(run["curve"][-1]["val_accuracy"] for run in method_runs)
        costs = {}
        for name in (reference, method):
            hits = [first_reaching(run["curve"], target) for run in runs[name]]
            costs[name], _ = _median_or_censored([hit["samples"] if hit else None for hit in hits])
        ratio = None
        if costs[reference] and costs[method] is not None:
            ratio = costs[method] / costs[reference]
        matches[method] = {
            "target_val_accuracy": target,
            "reference_samples": costs[reference],
            "method_samples": costs[method],
            "ratio": ratio,
        }
    return matches


def accuracy_at_evaluations(runs: list[dict], evaluations: float) -> float | None:
    """Median over seeds of the validation accuracy a method had after `evaluations` objective evaluations.

    A run that stopped earlier (it reached the target, or it is the one-shot default)
    contributes its last value. None when some run had not finished its first evaluation.
    """
    values = []
    for run in runs:
        reached = [point for point in run["curve"] if point["objective_evaluations"] <= evaluations]
        if not reached:
            return None
        values.append(reached[-1]["val_accuracy"])
    return statistics.median(values)


def format_table(summaries: dict, ratios: dict, target: float) -> str:
    """A readable fixed-width table of the medians and ratios."""

    def show(value, digits=3):
        if value is None:
            return "not reached"
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)

    def show_ratio(value):
        # None: no ratio (neither this method nor the reference reached the target).
        return "n/a" if value is None else show(value)

    header = f"{'method':<22}{'reach':>7}{'samples->tgt':>14}{'time->tgt s':>12}{'evals->tgt':>11}{'final val':>11}{'final test':>11}{'x samples':>11}{'x time':>10}"
    lines = [f"Target validation accuracy {target}", header, "-" * len(header)]
    for method, summary in summaries.items():
        ratio = ratios.get(method, {})
        samples = summary["samples_to_target"]
        samples_text = (
            show(samples) if samples is not None else f">{show(summary.get('samples_to_target_lower_bound'))}"
        )
        time_value = summary["time_to_target_s"]
        time_text = (
            show(time_value) if time_value is not None else f">{show(summary.get('time_to_target_s_lower_bound'))}"
        )
        evals = summary["objective_evals_to_target"]
        evals_text = (
            show(evals) if evals is not None else f">{show(summary.get('objective_evals_to_target_lower_bound'))}"
        )
        lines.append(
            f"{method:<22}{summary['fraction_reaching_target']:>7.2f}{samples_text:>14}{time_text:>12}{evals_text:>11}"
            f"{summary['final_val_accuracy']:>11.3f}{summary['final_test_accuracy']:>11.3f}"
            f"{show_ratio(ratio.get('samples_to_target', '-')):>11}{show_ratio(ratio.get('time_to_target_s', '-')):>10}"
        )
    return "\n".join(lines)


def write_plots(root_dir: str, runs: dict, target: float, scoring: str = "method") -> list[str]:
    """PNG plots: accuracy vs samples, accuracy vs time, psi trajectories. Returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    colors = {method: f"C{index}" for index, method in enumerate(runs)}
    for axis_key, label, name in (
        ("samples", "simulated samples", "accuracy_vs_samples.png"),
        ("time_s", "wall-clock (s)", "accuracy_vs_time.png"),
    ):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for method, method_runs in runs.items():
            for index, run in enumerate(method_runs):
                xs = [max(p[axis_key], 1e-3) for p in run["curve"]]
                ys = [p["val_accuracy"] for p in run["curve"]]
                style = "o" if len(xs) == 1 else "-"
                axes.plot(xs, ys, style, color=colors[method], alpha=0.8, label=method if index == 0 else None)
        axes.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target}")
        axes.set_xscale("log")
        axes.set_xlabel(label + " (log scale)")
        axes.set_ylabel(
            "validation accuracy (referee)"
            if scoring == "referee"
            else "validation accuracy (best so far for search methods)"
        )
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = os.path.join(root_dir, name)
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for method, method_runs in runs.items():
        if method == "default" or not method_runs:
            continue
        run = method_runs[0]
        names = list(run["curve"][0]["psi"])
        for name in names:
            import numpy as np

            values = np.array([np.ravel(p["psi"][name]) for p in run["curve"]])
            xs = [p["samples"] for p in run["curve"]]
            for component in range(values.shape[1]):
                axes.plot(
                    xs,
                    values[:, component],
                    color=colors[method],
                    alpha=0.6,
                    label=f"{method}: {name}" if component == 0 else None,
                )
    axes.set_xscale("log")
    axes.set_xlabel("simulated samples (log scale)")
    axes.set_ylabel("psi components (constrained; first seed)")
    if axes.get_legend_handles_labels()[0]:  # A simulator without psi components has nothing to label.
        axes.legend(fontsize=7)
    figure.tight_layout()
    path = os.path.join(root_dir, "psi_trajectories.png")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    paths.append(path)
    return paths
