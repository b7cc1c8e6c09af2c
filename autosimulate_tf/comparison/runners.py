"""Run every method on one problem with the same accounting.

The problem (simulator, real data, task model, loss) is whatever the gin config
binds for `AutoSimulateTrainer`, so every method sees the same simulator class and
initial psi, the same real data and the same model architecture.
"""

import time

import gin

from autosimulate_tf.baselines import (
    BayesianOptimization,
    LearningToSimulate,
    RandomSearch,
    ScratchTrainingEvaluator,
    UntunedDefault,
)
from autosimulate_tf.comparison.referee import Referee, check_scoring
from autosimulate_tf.train.trainer import AutoSimulateTrainer

AUTOSIMULATE = "autosimulate"
# What `run_comparison` runs unless told otherwise.
DEFAULT_METHODS = (AUTOSIMULATE, "learning_to_simulate", "random_search", "default")
# Every method it can run; Bayesian optimisation needs the optional optuna (`.[bo]`).
METHODS = (*DEFAULT_METHODS, "bayesian_optimization")
SEARCH_METHODS = {
    "learning_to_simulate": LearningToSimulate,
    "random_search": RandomSearch,
    "bayesian_optimization": BayesianOptimization,
    "default": UntunedDefault,
}


def make_stopper(target_accuracy: float, max_samples: int, max_time_s: float, stop_at_target: bool):
    """Returns `should_stop(curve)`: budget exhausted, or target reached when `stop_at_target`."""

    def should_stop(curve) -> bool:
        last = curve[-1]
        if last["samples"] >= max_samples or last["time_s"] >= max_time_s:
            return True
        return stop_at_target and last["val_accuracy"] >= target_accuracy

    return should_stop


def refereed(should_stop, problem: dict, seed: int, scoring: str, every_samples: int = 0):
    """`(should_stop, finish)`: rescoring by a `Referee` when scoring='referee'.

    The returned `should_stop` first rescores the newest curve point. Every method calls
    `should_stop` once after each new point, so each point is rescored once, outside the
    method's timers, before the stopping rule reads it. `finish(curve)` must be called on
    the finished curve: it freshens a last point that `every_samples` left carrying an
    older score.
    """
    if scoring == "method":
        return should_stop, lambda curve: None
    referee = Referee(problem, seed, every_samples)

    def score_then_stop(curve) -> bool:
        referee.score(curve[-1])
        return should_stop(curve)

    return score_then_stop, referee.finish


def run_autosimulate(
    seed: int, should_stop, max_outer_iterations: int, scoring: str = "method", referee_every_samples: int = 0
) -> tuple[list[dict], dict]:
    """AutoSimulate from the gin-bound trainer; one curve point per outer iteration.

    Returns:
      `(curve, extras)` with extras holding the median fraction of iteration time
      spent after inner training (the hypergradient overhead).
    """
    trainer = AutoSimulateTrainer(seed=seed)
    should_stop, finish = refereed(should_stop, trainer.problem(), seed, scoring, referee_every_samples)
    curve, overheads = [], []
    for _ in range(max_outer_iterations):
        metrics = trainer.step()
        overheads.append(metrics["hypergradient_s"] / metrics["iteration_s"])
        test = trainer.evaluate("test")  # Reporting only: not part of the timed work.
        curve.append(
            {
                "samples": metrics["simulated_samples"],
                "time_s": metrics["wall_clock_s"],
                "objective_evaluations": metrics["objective_evaluations"],
                "model_steps": metrics["inner_steps"],
                "hvps": metrics["hvp_count"],
                "val_accuracy": metrics["val_accuracy"],
                "test_accuracy": test["accuracy"],
                "psi": trainer.simulator.constrained_parameters_as_lists(),
                "render_s": metrics["render_s"],
                "inner_s": metrics["inner_s"],
                "hypergradient_s": metrics["hypergradient_s"],
            }
        )
        if should_stop(curve):
            break
    finish(curve)
    overheads.sort()
    return curve, {"hypergradient_overhead_fraction": overheads[len(overheads) // 2]}


def run_search_method(
    method: str, seed: int, should_stop, scoring: str = "method", referee_every_samples: int = 0
) -> tuple[list[dict], dict]:
    """A baseline scored by scratch training on the gin-bound problem."""
    # The trainer is built only to read the shared problem definition from gin.
    problem = AutoSimulateTrainer(seed=seed).problem()
    evaluator = ScratchTrainingEvaluator(**problem)
    should_stop, finish = refereed(should_stop, problem, seed, scoring, referee_every_samples)
    curve = SEARCH_METHODS[method]().run(problem["simulator"], evaluator, seed, should_stop)
    finish(curve)
    return curve, {}


@gin.configurable
def run_method(
    method: str,
    seed: int,
    target_accuracy: float,
    max_samples: int = 10**6,
    max_time_s: float = 600.0,
    max_outer_iterations: int = 200,
    stop_at_target: bool = False,
    scoring: str = "method",
    referee_every_samples: int = 0,
) -> dict:
    """Runs one method with one seed under the shared budget.

    Args:
      method: one of `METHODS`.
      seed: run seed.
      target_accuracy: validation accuracy that counts as "reached".
      max_samples: budget of simulated samples.
      max_time_s: budget of the method's own wall-clock.
      max_outer_iterations: AutoSimulate's outer-iteration cap.
      stop_at_target: stop as soon as the target is reached.
      scoring: `"method"`: each method's own score (AutoSimulate's warm-started model,
        the best scratch-training evaluation so far for search baselines);
        `"referee"`: every point rescored by a fresh model on the psi the method would
        return (`comparison/referee.py`; budget `referee/ScratchTrainingEvaluator.*`).
        Targets, stopping and summaries then follow the referee's score.
      referee_every_samples: with the referee, rescore a point only after this many more
        simulated samples than the last rescored one (0: every point); the points between
        carry the last score, and a run's last point is always rescored.

    Returns:
      `{"curve": [...], "wall_clock_s": total including reporting, "scoring": scoring, **extras}`.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {METHODS}.")
    check_scoring(scoring)
    if referee_every_samples and scoring != "referee":
        raise ValueError(
            f"run_method.referee_every_samples={referee_every_samples} needs run_method.scoring = 'referee' "
            f"(scoring is {scoring!r})."
        )
    should_stop = make_stopper(target_accuracy, max_samples, max_time_s, stop_at_target)
    start = time.perf_counter()
    if method == AUTOSIMULATE:
        curve, extras = run_autosimulate(seed, should_stop, max_outer_iterations, scoring, referee_every_samples)
    else:
        curve, extras = run_search_method(method, seed, should_stop, scoring, referee_every_samples)
    return {"curve": curve, "wall_clock_s": time.perf_counter() - start, "scoring": scoring, **extras}
