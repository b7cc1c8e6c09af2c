"""Summaries, ratios and the printed table of a comparison (plots: `plots.py`).

Costs to the target are read at the first curve point whose validation score reaches
it (`Target`: accuracy >= target for classification, loss <= target for regression).
Medians are over seeds; a median that is a run which never reached the target is
reported as None, with `<cost>_to_target_lower_bound` the median budget actually spent.
"""

import math
import statistics

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import Score, Target

# The costs a method is charged to reach the target (and their ratios to the reference).
COSTS_TO_TARGET = (schema.SIMULATED_SAMPLES, schema.WALL_CLOCK_S, schema.OBJECTIVE_EVALUATIONS)


def to_target(cost: str) -> str:
    """Summary key of a cost to the target, e.g. `simulated_samples_to_target`."""
    return f"{cost}_to_target"


def first_reaching(curve: list[dict], target: Target) -> dict | None:
    """The first curve point whose validation score reaches `target`, or None."""
    return next((point for point in curve if target.is_reached_by(point)), None)


def summarize_run(run: dict, target: Target) -> dict:
    """Costs to target (None when never reached), total costs and final scores of one run."""
    curve = run["curve"]
    hit = first_reaching(curve, target)
    last = curve[-1]
    summary = {"reached_target": hit is not None}
    summary.update({to_target(cost): hit[cost] if hit else None for cost in COSTS_TO_TARGET})
    summary.update({f"final_{name}": last[name] for name in schema.SCORES})
    summary.update({f"total_{cost}": last[cost] for cost in schema.COSTS})
    summary["final_psi"] = last[schema.PSI]
    if "hypergradient_overhead_fraction" in run:
        summary["hypergradient_overhead_fraction"] = run["hypergradient_overhead_fraction"]
    return summary


def _median_or_censored(values: list) -> tuple[float | None, bool]:
    """Median treating None (never reached) as +inf; returns (value or None, censored)."""
    ordered = sorted(math.inf if v is None else v for v in values)
    median = statistics.median(ordered)
    return (None, True) if math.isinf(median) else (median, False)


def _median(values: list) -> float | None:
    """Median, or None when the values are None (accuracies of a regression problem)."""
    values = list(values)
    return None if any(value is None for value in values) else statistics.median(values)


def summarize_method(runs: list[dict], target: Target) -> dict:
    """Medians over seeds of `summarize_run`, with lower bounds for censored costs to target."""
    per_seed = [summarize_run(run, target) for run in runs]
    summary = {
        "seeds": per_seed,
        "fraction_reaching_target": sum(s["reached_target"] for s in per_seed) / len(per_seed),
    }
    for cost in COSTS_TO_TARGET:
        median, censored = _median_or_censored([s[to_target(cost)] for s in per_seed])
        summary[to_target(cost)] = median
        if censored:
            summary[f"{to_target(cost)}_lower_bound"] = statistics.median(s[f"total_{cost}"] for s in per_seed)
    for key in (*(f"final_{name}" for name in schema.SCORES), *(f"total_{cost}" for cost in schema.COSTS)):
        summary[key] = _median(s[key] for s in per_seed)
    if "hypergradient_overhead_fraction" in per_seed[0]:
        summary["hypergradient_overhead_fraction"] = _median(s["hypergradient_overhead_fraction"] for s in per_seed)
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
        for key in map(to_target, COSTS_TO_TARGET):
            if base[key] is None:
                ratios[method][key] = None
            elif summary[key] is not None:
                ratios[method][key] = summary[key] / base[key]
            else:
                ratios[method][key] = f">= {summary[key + '_lower_bound'] / base[key]:.3g}"
    return ratios


def samples_to_match_final(runs: dict, reference: str, score: Score) -> dict:
    """For each other method: samples the reference and the method need to reach the method's final score.

    The target is the method's median final validation score (`target_val_accuracy` or
    `target_val_loss`); costs are medians over seeds of the first curve point reaching it
    (None when a median run never does).
    """
    matches = {}
    for method, method_runs in runs.items():
        if method == reference:
            continue
        target = Target(score, statistics.median(run["curve"][-1][score.key] for run in method_runs))
        costs = {}
        for name in (reference, method):
            hits = [first_reaching(run["curve"], target) for run in runs[name]]
            costs[name], _ = _median_or_censored([hit[schema.SIMULATED_SAMPLES] if hit else None for hit in hits])
        ratio = None
        if costs[reference] and costs[method] is not None:
            ratio = costs[method] / costs[reference]
        matches[method] = {
            f"target_{score.key}": target.value,
            f"reference_{schema.SIMULATED_SAMPLES}": costs[reference],
            f"method_{schema.SIMULATED_SAMPLES}": costs[method],
            "ratio": ratio,
        }
    return matches


def score_at_evaluations(runs: list[dict], evaluations: float, score: Score) -> float | None:
    """Median over seeds of the validation score a method had after `evaluations` objective evaluations.

    A run that stopped earlier (it reached the target, or it is the one-shot default)
    contributes its last value. None when some run had not finished its first evaluation.
    """
    values = []
    for run in runs:
        reached = [point for point in run["curve"] if point[schema.OBJECTIVE_EVALUATIONS] <= evaluations]
        if not reached:
            return None
        values.append(reached[-1][score.key])
    return statistics.median(values)


def show_score(value: float | None, score=None) -> str:
    """A score for the table and the printout: `n/a` for a missing accuracy; accuracies with 3 decimals."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if score is not None and score.higher_is_better else f"{value:.4g}"


def _show(value, digits: int = 3) -> str:
    if value is None:
        return "not reached"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _show_cost(summary: dict, key: str) -> str:
    """A median cost to target, or `>bound` when the median run never reached it."""
    value = summary[key]
    return _show(value) if value is not None else f">{_show(summary.get(key + '_lower_bound'))}"


def _show_ratio(value) -> str:
    # None: no ratio (neither this method nor the reference reached the target).
    return "n/a" if value is None else _show(value)


def format_table(summaries: dict, ratios: dict, target: Target) -> str:
    """A readable fixed-width table of the medians and ratios."""
    score = target.score
    relation = ">=" if score.higher_is_better else "<="
    header = (
        f"{'method':<22}{'reach':>7}{'samples->tgt':>14}{'time->tgt s':>12}{'evals->tgt':>11}"
        f"{'final val':>11}{'final test':>11}{'x samples':>11}{'x time':>10}"
    )
    lines = [f"Target: {score.label} {relation} {target.value}", header, "-" * len(header)]
    for method, summary in summaries.items():
        ratio = ratios.get(method, {})
        costs = "".join(
            f"{_show_cost(summary, to_target(cost)):>{width}}"
            for cost, width in zip(COSTS_TO_TARGET, (14, 12, 11), strict=True)
        )
        lines.append(
            f"{method:<22}{summary['fraction_reaching_target']:>7.2f}{costs}"
            f"{show_score(summary['final_' + score.key], score):>11}{show_score(summary['final_' + score.test_key], score):>11}"
            f"{_show_ratio(ratio.get(to_target(schema.SIMULATED_SAMPLES), '-')):>11}"
            f"{_show_ratio(ratio.get(to_target(schema.WALL_CLOCK_S), '-')):>10}"
        )
    return "\n".join(lines)
