"""The progress record every compared method produces: one point per unit of work.

A curve point holds the method's cumulative costs (`results_schema.COSTS`), the
validation and test scores of the psi it reports at that point (accuracies are None
for regression), that psi (constrained, by name) and any method-specific extras
(`results_schema.CURVE_POINT_KEYS` are always present). AutoSimulate's curve
(comparison/runners.py) has the same keys.
"""

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines.score import Score


def new_totals() -> dict:
    """Zeroed cumulative costs of a search method, by their schema names."""
    return dict.fromkeys(schema.COSTS, 0) | dict.fromkeys(schema.CLOCKS, 0.0)


def add_evaluation(totals: dict, evaluation: dict) -> None:
    """Adds one fresh-model evaluation's costs to `totals` (it is one objective evaluation, no HVPs)."""
    for name in (schema.SIMULATED_SAMPLES, schema.MODEL_STEPS, *schema.CLOCKS):
        totals[name] += evaluation[name]
    totals[schema.OBJECTIVE_EVALUATIONS] += 1


def best_so_far(best: dict | None, evaluation: dict, simulator, score: Score) -> dict:
    """`best`, or `evaluation` with the simulator's current psi when it scores better by `score`.

    The search baselines report the best evaluation so far; its psi is what they would hand on.
    """
    if best is None or score.is_better(evaluation[score.key], best[score.key]):
        return dict(evaluation, psi=simulator.constrained_parameters_as_lists())
    return best


def curve_point(totals: dict, scored: dict, psi: dict, **extra) -> dict:
    """A curve point: the cumulative `totals`, the scores of `scored`, `psi` and any `extra`.

    Args:
      totals: cumulative costs (`new_totals` keys).
      scored: an evaluation (or best-so-far evaluation) holding `results_schema.SCORES`.
      psi: the psi the method reports at this point, constrained, by name.
      **extra: method-specific entries (e.g. `policy_std`).
    """
    return {
        **{name: totals[name] for name in schema.COSTS},
        **{name: scored[name] for name in schema.SCORES},
        schema.PSI: psi,
        **extra,
    }
