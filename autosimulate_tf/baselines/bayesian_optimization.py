"""Bayesian optimisation over psi: Optuna's Tree-structured Parzen Estimator (optional extra).

The same search space and the same scoring as random search: each candidate psi lies
in the simulator's search box (every bounded component uniformly within its
`(low, high)`, every simplex component as normalised non-negative weights), and is
scored by a fresh dataset, a model trained from scratch and its validation accuracy.
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

from autosimulate_tf.baselines.curve import add_evaluation, best_so_far, curve_point, new_totals
from autosimulate_tf.baselines.scratch_training import evaluation_seed
from autosimulate_tf.simulators.base import Simulator, WrappingSimulator

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
      ValueError: when the simulator defines its own search space (overrides
        `random_parameters`), which TPE cannot read, or a component has no bounds.
    """
    inner = simulator
    while isinstance(inner, WrappingSimulator):
        inner = inner.wrapped
    if type(inner).random_parameters is not Simulator.random_parameters:
        raise ValueError(
            f"{type(inner).__name__} overrides random_parameters with its own search space, which "
            "BayesianOptimization cannot read; it searches the box given by add_parameter(bounds=...) "
            "and the simplex of SoftmaxCentered components."
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
        if num_startup_trials < 1:
            raise ValueError(f"BayesianOptimization.num_startup_trials={num_startup_trials} must be >= 1.")
        self.num_startup_trials = num_startup_trials
        self.multivariate = multivariate

    def run(self, simulator, evaluator, seed: int, should_stop) -> list[dict]:
        """Evaluates TPE's candidates until `should_stop(curve)`; returns the best-so-far curve."""
        optuna = _import_optuna()
        space = search_space(simulator)
        distributions = _distributions(optuna, space)
        with warnings.catch_warnings():  # `multivariate` is marked experimental in Optuna 4; we use it knowingly.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                n_startup_trials=self.num_startup_trials, multivariate=self.multivariate, seed=seed
            )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        curve, best, totals = [], None, new_totals()
        while True:
            start = time.perf_counter()
            trial = study.ask(distributions)
            simulator.set_constrained_parameters(_psi_from(trial.params, space))
            sampler_s = time.perf_counter() - start
            evaluation = evaluator.evaluate(evaluation_seed(seed, totals["evaluations"]))
            start = time.perf_counter()
            study.tell(trial, evaluation["val_accuracy"])
            sampler_s += time.perf_counter() - start
            add_evaluation(totals, evaluation)
            totals["time_s"] += sampler_s
            best = best_so_far(best, evaluation, simulator)
            curve.append(curve_point(totals, best, best["psi"], sampler_s=sampler_s))
            if should_stop(curve):
                return curve
