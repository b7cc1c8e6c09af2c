"""Run one method on one problem with the same accounting as every other.

The problem (simulator, real data, task model, loss) is whatever the gin config binds for
`Problem`. Every run builds its own `Problem()`, so each method starts from the same
simulator class and initial psi, the same real data and the same model architecture, and
hands that one object to everything the run uses: the AutoSimulate trainer, or the
baseline and its fresh-model evaluator, and the referee (`referee.py`).

Every method produces the same curve (`baselines/curve.py`): one point per outer
iteration (AutoSimulate) or per objective evaluation (the baselines), with cumulative
costs under the names of `results_schema.COSTS`. Which validation score decides the
target and the stopping rule is the `Target`'s (`baselines/score.py`).
"""

import time

import gin

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import BayesianOptimization, LearningToSimulate, RandomSearch, Target, UntunedDefault
from autosimulate_tf.comparison.referee import REFEREE, Referee, check_scoring
from autosimulate_tf.errors import check
from autosimulate_tf.problem import Problem
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator
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


def make_stopper(target: Target, max_samples: int, max_time_s: float, stop_at_target: bool):
    """Returns `should_stop(curve)`: budget exhausted, or target reached when `stop_at_target`."""

    def should_stop(curve) -> bool:
        last = curve[-1]
        if last[schema.SIMULATED_SAMPLES] >= max_samples or last[schema.WALL_CLOCK_S] >= max_time_s:
            return True
        return stop_at_target and target.is_reached_by(last)

    return should_stop


def refereed(should_stop, referee: Referee | None):
    """`(should_stop, finish)`: rescoring by `referee` first, when there is one.

    The returned `should_stop` first rescores the newest curve point. Every method calls
    `should_stop` once after each new point, so each point is rescored once, outside the
    method's timers, before the stopping rule reads it. `finish(curve)` must be called on
    the finished curve: it freshens a last point that `every_samples` left carrying an
    older score.
    """
    if referee is None:
        return should_stop, lambda curve: None

    def score_then_stop(curve) -> bool:
        referee.score(curve[-1])
        return should_stop(curve)

    return score_then_stop, referee.finish


def autosimulate_point(metrics: dict, test_scores: dict, psi: dict) -> dict:
    """A curve point from `AutoSimulateTrainer.step()`'s metrics and its test scores."""
    return {
        **{name: metrics[name] for name in schema.COSTS},
        schema.VAL_LOSS: metrics[schema.VAL_LOSS],
        schema.VAL_ACCURACY: metrics[schema.VAL_ACCURACY],
        schema.TEST_LOSS: test_scores[schema.TEST_LOSS],
        schema.TEST_ACCURACY: test_scores[schema.TEST_ACCURACY],
        schema.PSI: psi,
        **{name: metrics[name] for name in ("render_s", "inner_s", "hypergradient_s")},
    }


def run_autosimulate(
    problem: Problem, seed: int, should_stop, max_outer_iterations: int, referee: Referee | None = None
) -> tuple[list[dict], dict]:
    """AutoSimulate on `problem` with the gin-bound trainer settings; one curve point per outer iteration.

    Returns:
      `(curve, extras)` with extras holding the median fraction of iteration time
      spent after inner training (the hypergradient overhead).
    """
    trainer = AutoSimulateTrainer(problem=problem, seed=seed)
    should_stop, finish = refereed(should_stop, referee)
    curve, overheads = [], []
    for _ in range(max_outer_iterations):
        metrics = trainer.step()
        overheads.append(metrics["hypergradient_s"] / metrics["iteration_s"])
        test_scores = trainer.evaluate("test")  # Reporting only: not part of the timed work.
        curve.append(autosimulate_point(metrics, test_scores, trainer.simulator.constrained_parameters_as_lists()))
        if should_stop(curve):
            break
    finish(curve)
    overheads.sort()
    return curve, {"hypergradient_overhead_fraction": overheads[len(overheads) // 2]}


def run_search_method(
    baseline, problem: Problem, seed: int, should_stop, referee: Referee | None = None
) -> tuple[list[dict], dict]:
    """A baseline on `problem`, scoring psi with the gin-bound (unscoped) `ScratchTrainingEvaluator`."""
    evaluator = ScratchTrainingEvaluator(problem)
    should_stop, finish = refereed(should_stop, referee)
    curve = baseline.run(problem, evaluator, seed, should_stop)
    finish(curve)
    return curve, {}


def check_settings(
    method: str, max_samples: int, max_time_s: float, max_outer_iterations: int, scoring: str, every_samples: int
) -> None:
    """Raises `ConfigError` for a bad `run_method` setting, naming the binding."""
    check(method in METHODS, f"run_method.method={method!r} is not one of {METHODS}.")
    check(max_samples >= 1, f"run_method.max_samples={max_samples} must be >= 1.")
    check(max_time_s > 0, f"run_method.max_time_s={max_time_s} must be > 0.")
    check(max_outer_iterations >= 1, f"run_method.max_outer_iterations={max_outer_iterations} must be >= 1.")
    check_scoring(scoring)
    check(
        not every_samples or scoring == REFEREE,
        f"run_method.referee_every_samples={every_samples} needs run_method.scoring = 'referee' (scoring is {scoring!r}).",
    )


@gin.configurable
def run_method(
    method: str,
    seed: int,
    target: Target,
    max_samples: int = 10**6,
    max_time_s: float = 600.0,
    max_outer_iterations: int = 200,
    stop_at_target: bool = False,
    scoring: str = "method",
    referee_every_samples: int = 0,
    problem: Problem | None = None,
    check_only: bool = False,
) -> dict | None:
    """Runs one method with one seed under the shared budget.

    Args:
      method: one of `METHODS`.
      seed: run seed.
      target: the validation score that counts as "reached" (`Target`).
      max_samples: budget of simulated samples.
      max_time_s: budget of the method's own wall-clock.
      max_outer_iterations: AutoSimulate's outer-iteration cap.
      stop_at_target: stop as soon as the target is reached.
      scoring: `"method"`: each method's own score (AutoSimulate's warm-started model,
        the best fresh-model evaluation so far for search baselines);
        `"referee"`: every point rescored by a fresh model on the psi the method would
        return (`comparison/referee.py`; budget `referee/ScratchTrainingEvaluator.*`).
        Targets, stopping and summaries then follow the referee's score.
      referee_every_samples: with the referee, rescore a point only after this many more
        simulated samples than the last rescored one (0: every point); the points between
        carry the last score, and a run's last point is always rescored.
      problem: the problem to run on; None: a new `Problem()` from the gin bindings.
      check_only: only check the settings against `problem` (nothing is rendered or
        trained) and return None; `run_comparison` does so for every method first.

    Returns:
      `{"curve": [...], "elapsed_s": the run's whole wall-clock, reporting included,
      "scoring": scoring, **extras}`.

    Raises:
      ConfigError: for a bad setting, naming it, before anything runs.
    """
    check_settings(method, max_samples, max_time_s, max_outer_iterations, scoring, referee_every_samples)
    start = time.perf_counter()
    problem = Problem() if problem is None else problem
    baseline = SEARCH_METHODS[method]() if method in SEARCH_METHODS else None
    if baseline is not None:
        baseline.check(problem)
    referee = Referee(problem, seed, referee_every_samples) if scoring == REFEREE else None
    if check_only:
        if baseline is not None:
            ScratchTrainingEvaluator(problem)  # its settings are checked when it is built
        return None
    should_stop = make_stopper(target, max_samples, max_time_s, stop_at_target)
    if method == AUTOSIMULATE:
        curve, extras = run_autosimulate(problem, seed, should_stop, max_outer_iterations, referee)
    else:
        curve, extras = run_search_method(baseline, problem, seed, should_stop, referee)
    return {"curve": curve, "elapsed_s": time.perf_counter() - start, "scoring": scoring, **extras}
