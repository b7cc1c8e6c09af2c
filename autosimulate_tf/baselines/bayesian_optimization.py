"""Bayesian optimisation over psi: Optuna's Tree-structured Parzen Estimator (optional extra).

The same search space and the same scoring as random search: each candidate psi lies
in the simulator's search box (every bounded component uniformly within its
`(low, high)`, every simplex component as normalised non-negative weights), and is
scored by a fresh dataset, a model trained from scratch and its validation score
(accuracy, maximised; or, for a regression problem, loss, minimised: `score.py`).
Where random search draws candidates blindly, TPE (Bergstra et al., NeurIPS 2011)
models which regions gave good scores and proposes the next candidate there. The curve
reports the best candidate so far, like random search's.

Needs `optuna` (`pip install -e '.[bo]'`). The sampler's own time (proposing and
recording candidates) is counted in the method's wall-clock, as rendering and training
are: it is work this method does and the others do not.

#### References
[1]: Bergstra, Bardenet, Bengio, Kegl. Algorithms for Hyper-Parameter Optimization. NeurIPS 2011.
[2]: Akiba, Sano, Yanase, Ohta, Koyama. Optuna: A Next-generation Hyperparameter Optimization
     Framework. KDD 2019.
"""

import time
import warnings

import gin
import numpy as np

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines.curve import add_evaluation, best_so_far, curve_point, new_totals
from autosimulate_tf.baselines.score import Score
from autosimulate_tf.errors import check
from autosimulate_tf.simulators.base import Simulator, WrappingSimulator
from autosimulate_tf.train.scratch_training import evaluation_seed

# A simplex component's weights are drawn from [_MIN_WEIGHT, 1] and normalised; the floor
# keeps every probability positive, as the SoftmaxCentered bijector needs.
_MIN_WEIGHT = 1e-3


def _import_optuna():
    try:
        import optuna
    except ImportError as error:
        raise ImportError(
            "run_comparison.methods includes 'bayesian_optimization', which needs optuna: pip install -e '.[bo]'"
        ) from error
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def search_space(simulator) -> dict:
    """`simulator.search_space()`, with simplex components given TPE's weight range.

    Raises:
      ConfigError: when the simulator defines its own search space (overrides
        `random_parameters`), which TPE cannot read, or a component has no bounds.
    """
    inner = simulator
    while isinstance(inner, WrappingSimulator):
        inner = inner.wrapped
    check(
        type(inner).random_parameters is Simulator.random_parameters,
        f"{type(inner).__name__} overrides random_parameters with its own search space, which "
        "BayesianOptimization cannot read (run_comparison.methods includes 'bayesian_optimization'); it "
        "searches the box given by add_parameter(bounds=...) and the simplex of SoftmaxCentered components.",
    )
    return {
        name: (kind, shape, _MIN_WEIGHT, 1.0) if kind == "simplex" else (kind, shape, low, high)
        for name, (kind, shape, low, high) in simulator.search_space().items()
    }


def _distributions(optuna, space: dict) -> dict:
    """One Optuna float per scalar of psi, named `<component>/<flat index>`."""
    distributions = {}
    for name, (_, shape, low, high) in space.items():
        for index in range(int(np.prod(shape, dtype=int))):
            distributions[f"{name}/{index}"] = optuna.distributions.FloatDistribution(low, high)
    return distributions


def _psi_from(params: dict, space: dict) -> dict:
    """The constrained psi a trial's flat parameters describe."""
    psi = {}
    for name, (kind, shape, _, _) in space.items():
        size = int(np.prod(shape, dtype=int))
        values = np.array([params[f"{name}/{index}"] for index in range(size)], np.float32).reshape(shape)
        if kind == "simplex":
            values = values / values.sum(axis=-1, keepdims=True)
        psi[name] = values
    return psi


@gin.configurable
class BayesianOptimization:
    """TPE over psi inside the simulator's search box (see the module docstring)."""

    def __init__(self, num_startup_trials: int = 10, multivariate: bool = True):
        """Args:
        num_startup_trials: candidates drawn at random before TPE models the scores.
        multivariate: model the joint density of psi's components (Optuna's multivariate
          TPE) rather than each component on its own.
        """
        check(num_startup_trials >= 1, f"BayesianOptimization.num_startup_trials={num_startup_trials} must be >= 1.")
        self.num_startup_trials = num_startup_trials
        self.multivariate = multivariate

    def check(self, problem) -> None:
        """Raises `ConfigError` (no readable search box) or `ImportError` (no optuna) before anything runs."""
        search_space(problem.simulator)
        _import_optuna()

    def run(self, problem, evaluator, seed: int, should_stop) -> list[dict]:
        """Evaluates TPE's candidates until `should_stop(curve)`; returns the best-so-far curve.

        Args:
          problem: the `Problem`; its simulator's psi is overwritten by each candidate.
          evaluator: scores the simulator's current psi (`ScratchTrainingEvaluator.evaluate`).
          seed: run seed (the sampler's and the evaluations').
          should_stop: callable on the curve so far.
        """
        optuna = _import_optuna()
        simulator, score = problem.simulator, Score.for_problem(problem)
        space = search_space(simulator)
        distributions = _distributions(optuna, space)
        study = optuna.create_study(direction=score.optimization_direction, sampler=self._sampler(optuna, seed))
        curve, best, totals = [], None, new_totals()
        while True:
            start = time.perf_counter()
            trial = study.ask(distributions)
            simulator.set_constrained_parameters(_psi_from(trial.params, space))
            sampler_s = time.perf_counter() - start
            evaluation = evaluator.evaluate(evaluation_seed(seed, len(curve)))
            start = time.perf_counter()
            _tell(optuna, study, trial, evaluation[score.key])
            sampler_s += time.perf_counter() - start
            add_evaluation(totals, evaluation)
            totals[schema.WALL_CLOCK_S] += sampler_s
            best = best_so_far(best, evaluation, simulator, score)
            curve.append(curve_point(totals, best, best["psi"], sampler_s=sampler_s))
            if should_stop(curve):
                return curve

    def _sampler(self, optuna, seed: int):
        with warnings.catch_warnings():  # `multivariate` is marked experimental in Optuna 4; we use it knowingly.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=self.num_startup_trials, multivariate=self.multivariate, seed=seed
            )


def _tell(optuna, study, trial, value: float) -> None:
    """Records a trial's score; a non-finite one (a diverged training) as a failed trial TPE leaves out."""
    if np.isfinite(value):
        study.tell(trial, float(value))
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
