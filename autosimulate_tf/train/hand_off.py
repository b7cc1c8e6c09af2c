"""What a finished run hands on: the psi to use, fresh models trained on it, and pictures.

After the last outer iteration, `HandOff.run` decides which psi the run hands on and
reports how good it is, in this order, each step only when asked for in gin:

  1. tail averaging (`psi_average_fraction`, train/psi_average.py): the mean psi over
     the last part of the run;
  2. psi selection (`psi_selection_candidates`, train/psi_selection.py): the best of a
     few psi from the trajectory (and the average), by fresh-model validation scores;
  3. the final model (`final_training`): a fresh model on renders from the handed-on
     psi, scored on the real test data;
  4. the real-data reference (`real_data_reference`): the same model trained on the
     real validation data, the sim-to-real gap for readers;
  5. pictures: `psi_trajectory.png`, and for image simulators `samples.png` (real
     images, renders at the initial psi, renders at the handed-on psi).

The simulator's psi is never changed: the checkpoint keeps the last iterate, and the
handed-on psi is used through `Simulator.temporary_psi`. The hand-off is built (and
its evaluators, so their gin bindings are checked) before the first outer iteration.
Each finished step is recorded in `<root_dir>/hand_off.json`, so a finished run
re-run with the same `root_dir` re-reads them instead of training them again.
"""

import json
import os

import gin
import tensorflow as tf

from autosimulate_tf import results_schema as schema
from autosimulate_tf.errors import check
from autosimulate_tf.train import pictures, psi_average, psi_selection, results_io
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator

CACHE_FILE = "hand_off.json"


class _StepCache:
    """Finished hand-off steps of one run, by name, valid for one outer-iteration count and settings."""

    def __init__(self, root_dir: str, outer_iterations: int):
        self.path = os.path.join(root_dir, CACHE_FILE)
        self.outer_iterations = outer_iterations
        self.steps = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                stored = json.load(f)
            if stored.get("outer_iterations") == outer_iterations:
                self.steps = stored["steps"]

    def get(self, name: str, settings: dict):
        """The recorded result of step `name` if it ran with these settings, else None."""
        entry = self.steps.get(name)
        return entry["result"] if entry is not None and entry["settings"] == settings else None

    def put(self, name: str, settings: dict, result) -> None:
        """Records a finished step (written at once, so a crash later keeps it)."""
        self.steps[name] = {"settings": settings, "result": result}
        results_io.write_json_atomically(self.path, {"outer_iterations": self.outer_iterations, "steps": self.steps})


def _evaluator_settings(evaluator: ScratchTrainingEvaluator) -> dict:
    return {
        "num_samples": evaluator.num_samples,
        "num_steps": evaluator.num_steps,
        "batch_size": evaluator.batch_size,
        "learning_rate": float(evaluator.optimizer.learning_rate.numpy()),
        "weight_decay": evaluator.weight_decay,
    }


@gin.configurable
class HandOff:
    """The post-run steps: averaging, selection, final model, reference, pictures (module docstring)."""

    def __init__(
        self,
        problem,
        final_training: bool = False,
        real_data_reference: bool = False,
        psi_average_fraction: float = 0.0,
        psi_selection_candidates: int = 0,
        psi_selection_seeds: int = 1,
        psi_selection_include_initial: bool = False,
    ):
        """Args:
        problem: the run's `Problem`.
        final_training: train a fresh model on renders from the handed-on psi
          (`final/ScratchTrainingEvaluator` in gin); `final_model` in results.json.
        real_data_reference: train the same model on the real validation data
          (`reference/ScratchTrainingEvaluator`); `real_data_reference` in results.json.
        psi_average_fraction: 0 (default): off. f in (0, 1]: hand on the mean psi over
          the last f of the outer iterations (`averaged_psi` in results.json).
        psi_selection_candidates: 0 (default): off. K >= 1: score K psi from evenly
          spaced outer iterations (and the average, if on) by fresh models
          (`selection/ScratchTrainingEvaluator`) and hand on the best by real
          validation accuracy (loss for regression).
        psi_selection_seeds: fresh models per selection candidate (their mean scores it).
        psi_selection_include_initial: the psi the run started from is a candidate too.

        Raises:
          ConfigError: naming the bad setting (also from the evaluators' bindings).
        """
        check(
            0.0 <= psi_average_fraction <= 1.0,
            f"HandOff.psi_average_fraction={psi_average_fraction} must be in [0, 1].",
        )
        check(
            psi_selection_candidates >= 0,
            f"HandOff.psi_selection_candidates={psi_selection_candidates} must be >= 0 (0: off).",
        )
        check(psi_selection_seeds >= 1, f"HandOff.psi_selection_seeds={psi_selection_seeds} must be >= 1.")
        self.problem = problem
        self.psi_average_fraction = float(psi_average_fraction)
        self.psi_selection_candidates = int(psi_selection_candidates)
        self.psi_selection_seeds = int(psi_selection_seeds)
        self.psi_selection_include_initial = bool(psi_selection_include_initial)
        wanted = {"selection": psi_selection_candidates > 0, "final": final_training, "reference": real_data_reference}
        self.evaluators = {}
        for scope, on in wanted.items():
            if on:
                with gin.config_scope(scope):
                    self.evaluators[scope] = ScratchTrainingEvaluator(problem)

    def run(self, root_dir: str, entries: list[dict], seed: int, writer_fn) -> dict:
        """Runs the asked-for steps after a run; returns the results.json entries they add.

        Args:
          root_dir: the run's folder (pictures and `hand_off.json` go there).
          entries: the run's psi trajectory (`PsiTrajectory.entries`), iteration 0 first.
          seed: the run seed (fresh models derive theirs from it).
          writer_fn: returns the run's TensorBoard writer (called only when a picture is drawn).
        """
        outer_iterations = max(entry["iteration"] for entry in entries)
        cache = _StepCache(root_dir, outer_iterations)
        results = {}
        hand_on = {k: v for k, v in entries[-1].items() if k != "iteration"}
        if outer_iterations > 0:
            averaged = self._average(entries, results)
            hand_on = averaged if averaged is not None else hand_on
            if self.psi_selection_candidates:
                hand_on = self._select(entries, averaged, seed, cache, results)
        with self.problem.simulator.temporary_psi(constrained=hand_on):
            if "final" in self.evaluators:
                results[schema.FINAL_MODEL] = self._final_model(seed, cache)
            if "reference" in self.evaluators:
                results[schema.REAL_DATA_REFERENCE] = self._reference(seed, cache)
            self._pictures(root_dir, entries, hand_on, cache, writer_fn, seed)
        return results

    def _average(self, entries: list[dict], results: dict):
        if not self.psi_average_fraction:
            return None
        averaged, first, last = psi_average.tail_average(entries, self.psi_average_fraction)
        results[schema.AVERAGED_PSI] = {name: value.tolist() for name, value in averaged.items()}
        results[schema.AVERAGED_PSI_ITERATIONS] = [first, last]
        print(f"Final model and pictures use psi averaged over outer iterations {first}-{last}.", flush=True)
        return averaged

    def _select(self, entries: list[dict], averaged, seed: int, cache: _StepCache, results: dict) -> dict:
        """Psi selection; returns the selected constrained psi and adds its entries to `results`."""
        iterations = psi_selection.candidate_iterations(entries, self.psi_selection_candidates)
        if self.psi_selection_include_initial:
            iterations = [0, *iterations]
        candidates = [(i, psi_selection.psi_at(entries, i)) for i in iterations]
        if averaged is not None:
            candidates.append(("average", averaged))
        evaluator = self.evaluators["selection"]
        settings = {
            "candidates": [[label, {k: v.tolist() for k, v in psi.items()}] for label, psi in candidates],
            "seeds": self.psi_selection_seeds,
            **_evaluator_settings(evaluator),
        }
        recorded = cache.get("selection", settings)
        if recorded is None:
            best, table = psi_selection.select_psi(
                self.problem.simulator, evaluator, candidates, seed=seed, num_seeds=self.psi_selection_seeds
            )
            recorded = {"best": best, "table": table}
            cache.put("selection", settings, recorded)
        best, table = recorded["best"], recorded["table"]
        for row in table:
            accuracy = "" if row["val_accuracy"] is None else f"val accuracy {row['val_accuracy']:.3f}, "
            print(
                f"psi selection: candidate {row['candidate']}: fresh-model {accuracy}val loss {row['val_loss']:.4f}",
                flush=True,
            )
        print(f"Selected the psi of candidate {table[best]['candidate']} for the final model and pictures.", flush=True)
        selected = candidates[best][1]
        results[schema.SELECTED_PSI] = {name: value.tolist() for name, value in selected.items()}
        results[schema.SELECTED_PSI_CANDIDATE] = table[best]["candidate"]
        results[schema.PSI_SELECTION] = table
        results[schema.SELECTION_SIMULATED_SAMPLES] = int(sum(row[schema.SIMULATED_SAMPLES] for row in table))
        return selected

    def _final_model(self, seed: int, cache: _StepCache) -> dict:
        evaluator = self.evaluators["final"]
        settings = {"psi": self.problem.simulator.constrained_parameters_as_lists(), **_evaluator_settings(evaluator)}
        scores = cache.get("final_model", settings)
        if scores is None:
            scores = evaluator.evaluate(seed=seed)
            cache.put("final_model", settings, scores)
        print(
            f"Fresh model on {evaluator.num_samples} samples from the final psi: real test "
            f"{_score_text(scores, self.problem.is_classification)}",
            flush=True,
        )
        return scores

    def _reference(self, seed: int, cache: _StepCache) -> dict:
        evaluator = self.evaluators["reference"]
        real = self.problem.real_data
        settings = _evaluator_settings(evaluator)
        reference = cache.get("real_data_reference", settings)
        if reference is None:
            scores = evaluator.train_and_score(
                tf.constant(real.validation_inputs), tf.constant(real.validation_labels), seed=seed
            )
            reference = {
                schema.TEST_LOSS: scores[schema.TEST_LOSS],
                schema.TEST_ACCURACY: scores[schema.TEST_ACCURACY],
                "training_examples": len(real.validation_labels),
                schema.MODEL_STEPS: scores[schema.MODEL_STEPS],
            }
            cache.put("real_data_reference", settings, reference)
        print(
            f"Reference model on the real validation data: real test {_score_text(reference, self.problem.is_classification)}"
        )
        return reference

    def _pictures(self, root_dir, entries, hand_on, cache: _StepCache, writer_fn, seed: int) -> None:
        """`psi_trajectory.png` and, for image simulators, `samples.png` (and TensorBoard)."""
        settings = {"hand_on": {k: tf.convert_to_tensor(v).numpy().tolist() for k, v in hand_on.items()}}
        if cache.get("pictures", settings) is not None:
            return
        pictures.write_psi_plot(os.path.join(root_dir, "psi_trajectory.png"), entries)
        simulator = self.problem.simulator
        if pictures.is_image_simulator(simulator):
            picture_seed = tf.constant([seed, 7])
            final = pictures.render_examples(simulator, 20, picture_seed)
            with simulator.temporary_psi(constrained={k: v for k, v in entries[0].items() if k != "iteration"}):
                initial = pictures.render_examples(simulator, 20, picture_seed)
            real = self.problem.real_data
            pixels = pictures.write_sample_grid(
                os.path.join(root_dir, "samples.png"),
                [
                    ("real", real.validation_inputs[:20], real.validation_labels[:20]),
                    ("initial psi", *initial),
                    ("final psi", *final),
                ],
            )
            pictures.image_summary(writer_fn(), "samples/real_initial_final", pixels, cache.outer_iterations)
        cache.put("pictures", settings, True)


def _score_text(scores: dict, is_classification: bool) -> str:
    if is_classification:
        return f"accuracy {scores[schema.TEST_ACCURACY]:.3f}"
    return f"loss {scores[schema.TEST_LOSS]:.4f}"
