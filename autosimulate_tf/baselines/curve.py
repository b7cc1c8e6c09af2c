"""The progress record every compared method produces: one point per unit of work."""


def new_totals() -> dict:
    """Zeroed cumulative counters of a search method."""
    return {"samples": 0, "time_s": 0.0, "steps": 0, "evaluations": 0}


def add_evaluation(totals: dict, evaluation: dict) -> None:
    """Adds one scratch-training evaluation's costs to `totals`."""
    totals["samples"] += evaluation["samples"]
    totals["steps"] += evaluation["steps"]
    totals["time_s"] += evaluation["time_s"]
    totals["evaluations"] += 1


def best_so_far(best: dict | None, evaluation: dict, simulator) -> dict:
    """`best`, or `evaluation` with the simulator's current psi when it scores higher.

    The search baselines report the best evaluation so far; its psi is what they would hand on.
    """
    if best is None or evaluation["val_accuracy"] > best["val_accuracy"]:
        return dict(evaluation, psi=simulator.constrained_parameters_as_lists())
    return best


def curve_point(totals: dict, best: dict, psi: dict, **extra) -> dict:
    """A curve point: cumulative costs and the best-so-far validation/test accuracy.

    Keys (shared with AutoSimulate's curve): `samples`, `time_s`,
    `objective_evaluations`, `model_steps`, `hvps`, `val_accuracy`,
    `test_accuracy`, `psi`, plus any `extra`.
    """
    return {
        "samples": totals["samples"],
        "time_s": totals["time_s"],
        "objective_evaluations": totals["evaluations"],
        "model_steps": totals["steps"],
        "hvps": 0,
        "val_accuracy": best["val_accuracy"],
        "test_accuracy": best["test_accuracy"],
        "psi": psi,
        **extra,
    }
