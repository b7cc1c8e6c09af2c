"""Choosing the psi a run hands on: score candidate psi with fresh models on validation data.

The outer objective AutoSimulate descends is the validation loss of a *warm-started*
model, a noisy and history-dependent proxy for what a user wants from the final psi:
that a model trained from scratch on its renders does well on real data. With a
constant psi learning rate the iterates keep moving, and a run can pass through a
good psi and drift away from it (benchmarks/RESULTS.md, digits: the same
configuration run 300 instead of 150 iterations ends several points worse on two
seeds of three). Nothing in the hypergradient step notices, because it never looks
at a fresh model.

Selection closes that gap the way a practitioner would, using only the optimiser's
validation data: take a few psi from the run's trajectory (evenly spaced outer
iterations, optionally the tail average too), train a fresh model from scratch on
renders from each (`selection/ScratchTrainingEvaluator` in gin), and keep the psi
whose model scores best on the real validation set. Every candidate is scored with
the same seed (common random numbers: same initial weights, same latent noise, same
minibatches), so the comparison between candidates is not swamped by training noise.
The renders spent here are counted (`selection_simulated_samples` in results.json).
For a regression problem (no accuracy) candidates are ranked by validation loss alone.
"""

import math

import numpy as np

from autosimulate_tf import results_schema as schema
from autosimulate_tf.errors import ConfigError


def candidate_iterations(entries: list[dict], num_candidates: int) -> list[int]:
    """Evenly spaced outer iterations of a trajectory, always ending with the last one.

    Args:
      entries: `PsiTrajectory.entries` (dicts with `iteration`); iteration 0, the
        untuned psi, is never picked here (`HandOff.psi_selection_include_initial`
        adds it).
      num_candidates: how many iterations to pick (fewer if the run is shorter).

    Returns:
      Sorted, distinct iteration numbers: the ends of `num_candidates` equal
      segments of the run (for 300 iterations and 10 candidates: 30, 60, ..., 300).

    Raises:
      ConfigError: for `num_candidates < 1`.
      ValueError: for a trajectory without outer iterations.
    """
    if num_candidates < 1:
        raise ConfigError(f"HandOff.psi_selection_candidates={num_candidates} must be >= 1 (or 0: off).")
    iterations = sorted(e["iteration"] for e in entries if e["iteration"] >= 1)
    if not iterations:
        raise ValueError("psi selection needs at least one outer iteration in the psi trajectory.")
    count = len(iterations)
    picks = {iterations[max(0, math.ceil(count * (k + 1) / num_candidates) - 1)] for k in range(num_candidates)}
    return sorted(picks)


def psi_at(entries: list[dict], iteration: int) -> dict[str, np.ndarray]:
    """The constrained psi recorded after `iteration` (float32 arrays by name)."""
    for entry in entries:
        if entry["iteration"] == iteration:
            return {k: np.asarray(v, np.float32) for k, v in entry.items() if k != "iteration"}
    raise KeyError(f"outer iteration {iteration} is not in the psi trajectory.")


def select_psi(simulator, evaluator, candidates: list[tuple], seed: int, num_seeds: int = 1) -> tuple[int, list[dict]]:
    """Scores each candidate psi with a fresh model on validation data; returns the best.

    Args:
      simulator: the `Simulator`; each candidate is put in temporarily
        (`Simulator.temporary_psi`), so its psi is unchanged on return.
      evaluator: a `ScratchTrainingEvaluator` on `simulator`.
      candidates: `(label, constrained psi dict)` pairs; `label` is what the table
        reports (an outer iteration, or `"average"`).
      seed: the first evaluation seed; every candidate uses the same seeds
        (renders, initial weights and minibatches).
      num_seeds: fresh models per candidate, with seeds `seed, seed + 1, ...`;
        a candidate's score is their mean. One model's validation accuracy
        varies by a few points with its seed, as much as the candidates of a
        run differ, so averaging several makes the ranking less of a lottery.

    Returns:
      `(index of the selected candidate, table)`: one dict per candidate with
      `candidate`, `val_accuracy` and `val_loss` (means over seeds; accuracy None
      for regression), `val_accuracy_per_seed`, `simulated_samples` and
      `wall_clock_s` (totals), and `test_accuracy` (mean; for reporting how well
      selection did, never used to select). Ties in validation accuracy (300
      images: steps of 1/300) go to the lower validation loss, then to the later
      candidate.
    """
    if not candidates:
        raise ValueError("psi selection got no candidates.")
    if num_seeds < 1:
        raise ConfigError(f"HandOff.psi_selection_seeds={num_seeds} must be >= 1.")
    table = []
    for label, psi in candidates:
        with simulator.temporary_psi(constrained=psi):
            runs = [evaluator.evaluate(seed=seed + k) for k in range(num_seeds)]
        table.append({"candidate": label, **_summarise(runs)})
    best = max(range(len(table)), key=lambda i: (table[i]["val_accuracy"] or 0.0, -table[i]["val_loss"], i))
    return best, table


def _mean_or_none(values: list):
    return None if any(value is None for value in values) else float(np.mean(values))


def _summarise(runs: list[dict]) -> dict:
    """One candidate's row of the selection table from its fresh-model evaluations."""
    accuracies = [run[schema.VAL_ACCURACY] for run in runs]
    return {
        schema.VAL_ACCURACY: _mean_or_none(accuracies),
        schema.VAL_LOSS: float(np.mean([run[schema.VAL_LOSS] for run in runs])),
        "val_accuracy_per_seed": accuracies,
        schema.TEST_ACCURACY: _mean_or_none([run[schema.TEST_ACCURACY] for run in runs]),
        schema.SIMULATED_SAMPLES: sum(run[schema.SIMULATED_SAMPLES] for run in runs),
        schema.WALL_CLOCK_S: sum(run[schema.WALL_CLOCK_S] for run in runs),
    }
