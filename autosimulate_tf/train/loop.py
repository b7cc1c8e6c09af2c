"""The experiment entry point: restore, loop, checkpoint, summarise, write results.json."""

import json
import os
import signal

import gin
import tensorflow as tf
from absl import logging

from autosimulate_tf.baselines.scratch_training import ScratchTrainingEvaluator
from autosimulate_tf.train import pictures, psi_average, psi_selection
from autosimulate_tf.train.trainer import AutoSimulateTrainer, SimulatorFailureError


class RunInterruptedError(RuntimeError):
    """The run was stopped by SIGINT (Ctrl-C) after saving a checkpoint."""


class _InterruptFlag:
    """Turns the first SIGINT into a flag checked between outer iterations.

    Stopping between iterations keeps the saved state consistent (an interrupt in
    the middle of a step could leave psi updated but the counters not). A second
    Ctrl-C falls back to Python's default and stops at once.
    """

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # Not the main thread: signals cannot be caught here.
            self._previous = None
        return self

    def _handle(self, signum, frame):
        del signum, frame
        self.raised = True
        print("\nInterrupt received: finishing this outer iteration, then saving a checkpoint.", flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def write_json_atomically(path: str, value) -> None:
    """Writes JSON to a temporary file and renames it, so a kill never leaves half a file."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(temporary, path, overwrite=True)


SUMMARY_SCALARS = (
    "val_loss",
    "val_accuracy",
    "inner_loss",
    "inner_gradient_norm",
    "validation_gradient_norm",
    "hypergradient_norm",
    "direction_norm",
    "solver_residual",
    "solver_iterations",
    "negative_curvature",
    "influence_mean",
    "influence_std",
    "simulated_samples",
    "hvp_count",
    "wall_clock_s",
    "iteration_s",
)


def write_operative_config(root_dir: str, writer=None) -> None:
    """Writes gin's operative config (only what actually ran) to root_dir and TensorBoard."""
    config = gin.operative_config_str()
    path = os.path.join(root_dir, "operative_config.gin")
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        f.write(config)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    if writer is not None:
        with writer.as_default():
            # Markdown code block keeps gin's layout readable in TensorBoard's text tab.
            tf.summary.text("gin/operative_config", "```\n" + config + "\n```", step=0)


def _write_summaries(writer, trainer, metrics: dict) -> None:
    step = metrics["iteration"]
    with writer.as_default(step=step):
        for name in SUMMARY_SCALARS:
            tf.summary.scalar(name, float(metrics[name]))
        for name, value in trainer.simulator.constrained_parameters().items():
            for index, component in enumerate(tf.reshape(value, [-1]).numpy()):
                tf.summary.scalar(f"psi/{name}/{index}", float(component))


def _progress_line(metrics: dict, total: int) -> str:
    return (
        f"iter {metrics['iteration']:4d}/{total} | val_acc {metrics['val_accuracy']:.3f} "
        f"val_loss {metrics['val_loss']:.4f} | |hypergrad| {metrics['hypergradient_norm']:.3g} "
        f"| solver res {metrics['solver_residual']:.3g} it {int(metrics['solver_iterations'])}"
        f"{' NEG-CURV' if metrics['negative_curvature'] else ''} "
        f"| |inner grad| {metrics['inner_gradient_norm']:.3g} | samples {metrics['simulated_samples']}"
        f"{' (dropped ' + str(metrics['dropped_samples']) + ')' if metrics['dropped_samples'] else ''}"
        f"{' | skipped updates ' + str(metrics['skipped_updates']) if metrics['skipped_updates'] else ''}"
        f" | {metrics['wall_clock_s']:.1f}s"
    )


def final_results(trainer) -> dict:
    """The run's summary: constrained psi, real val/test metrics and cost counters."""
    validation = trainer.evaluate("validation")
    test = trainer.evaluate("test")
    results = {
        "final_psi": trainer.constrained_psi(),
        "val_accuracy": validation["accuracy"],
        "val_loss": validation["loss"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "outer_iterations": int(trainer.iteration.numpy()),
        "wall_clock_s": float(trainer.wall_clock_s.numpy()),
    }
    results.update({name: int(variable.numpy()) for name, variable in trainer.counters.items()})
    return results


@gin.configurable
def train_autosimulate(
    root_dir: str,
    num_outer_iterations: int = 100,
    checkpoint_interval: int = 10,
    log_interval: int = 10,
    max_checkpoints_to_keep: int = 3,
    trainer_factory=AutoSimulateTrainer,
    final_training: bool = False,
    real_data_reference: bool = False,
    final_psi_average_fraction: float = 0.0,
    psi_selection_candidates: int = 0,
    psi_selection_seeds: int = 1,
    psi_selection_include_initial: bool = False,
    history=None,
) -> dict:
    """Runs (or continues) an AutoSimulate experiment in `root_dir`.

    A run restarted with the same `root_dir` restores the latest checkpoint and
    continues; a finished run only rewrites `results.json`.

    Args:
      root_dir: output folder: checkpoints, TensorBoard `train/` summaries,
        `operative_config.gin`, `results.json`.
      num_outer_iterations: total outer iterations of the run (0: no tuning, e.g.
        to score the untuned default with `final_training`).
      checkpoint_interval: save every this many outer iterations (and at the end).
      log_interval: print a progress line every this many outer iterations.
      max_checkpoints_to_keep: checkpoints kept on disk.
      trainer_factory: builds the `AutoSimulateTrainer` (gin-configured).
      final_training: after tuning, train a fresh model on data rendered from the
        final psi (`final/ScratchTrainingEvaluator` in gin) and report it as
        `final_model` in results.json.
      real_data_reference: also train the same model on the real validation data
        (`reference/ScratchTrainingEvaluator`) and report its test accuracy as
        `real_data_reference`: the sim-to-real gap for readers, not a competitor.
      final_psi_average_fraction: 0 (default): the fresh final model and the
        sample pictures use the last psi. f in (0, 1]: they use the mean psi over
        the last f of the outer iterations (tail averaging, see `psi_average`),
        reported as `averaged_psi` in results.json; `final_psi` stays the last
        iterate, which is also what the checkpoint holds.
      psi_selection_candidates: 0 (default): off. K >= 1: before the final
        model, score K psi from evenly spaced outer iterations (and the tail
        average, if `final_psi_average_fraction` is set) by training a fresh model
        on renders from each (`selection/ScratchTrainingEvaluator` in gin) and
        keep the one with the best real *validation* accuracy (see
        `psi_selection`); reported as `selected_psi`, `psi_selection` and
        `selection_samples` in results.json.
      psi_selection_seeds: fresh models per selection candidate (default 1);
        a candidate's score is their mean validation accuracy.
      psi_selection_include_initial: also score the psi the run started from
        (iteration 0) as a selection candidate, so that a tuning run that found
        nothing better than its start hands that start on instead of a worse psi,
        as far as the selection model can tell. Default False.
      history: optional list; each iteration's metrics dict is appended to it.

    Returns:
      The dict written to `<root_dir>/results.json`.

    Raises:
      SimulatorFailureError: too many renders failed in one outer iteration; the
        last good state is checkpointed first.
      RunInterruptedError: SIGINT; a checkpoint is saved first.
    """
    if num_outer_iterations < 0:
        raise ValueError(f"train_autosimulate.num_outer_iterations={num_outer_iterations} must be >= 0.")
    for name, value in (
        ("checkpoint_interval", checkpoint_interval),
        ("log_interval", log_interval),
        ("max_checkpoints_to_keep", max_checkpoints_to_keep),
    ):
        if value < 1:
            raise ValueError(f"train_autosimulate.{name}={value} must be >= 1.")
    if not 0.0 <= final_psi_average_fraction <= 1.0:
        raise ValueError(
            f"train_autosimulate.final_psi_average_fraction={final_psi_average_fraction} must be in [0, 1]."
        )
    if psi_selection_seeds < 1:
        raise ValueError(f"train_autosimulate.psi_selection_seeds={psi_selection_seeds} must be >= 1.")
    if psi_selection_candidates < 0:
        raise ValueError(
            f"train_autosimulate.psi_selection_candidates={psi_selection_candidates} must be >= 0 (0: off)."
        )
    tf.io.gfile.makedirs(root_dir)
    trainer = trainer_factory()
    manager = tf.train.CheckpointManager(
        trainer.checkpoint(), os.path.join(root_dir, "checkpoints"), max_to_keep=max_checkpoints_to_keep
    )
    if manager.latest_checkpoint:
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Restored %s (outer iteration %d).", manager.latest_checkpoint, int(trainer.iteration.numpy()))
        print(f"Resuming from {manager.latest_checkpoint} at outer iteration {int(trainer.iteration.numpy())}.")
    writer = tf.summary.create_file_writer(os.path.join(root_dir, "train"))
    trajectory = pictures.PsiTrajectory(root_dir, int(trainer.iteration.numpy()))
    if not trajectory.entries:
        trajectory.append(0, trainer.constrained_psi())

    with _InterruptFlag() as interrupt:
        while int(trainer.iteration.numpy()) < num_outer_iterations:
            try:
                metrics = trainer.step()
            except SimulatorFailureError as error:
                path = manager.save(checkpoint_number=int(trainer.iteration.numpy()))
                raise SimulatorFailureError(f"{error} Last good state saved to {path}.") from error
            iteration = metrics["iteration"]
            if history is not None:
                history.append(metrics)
            _write_summaries(writer, trainer, metrics)
            trajectory.append(iteration, trainer.constrained_psi())
            if iteration == 1 or not os.path.exists(os.path.join(root_dir, "operative_config.gin")):
                write_operative_config(root_dir, writer)
            if iteration % log_interval == 0 or iteration == num_outer_iterations:
                print(_progress_line(metrics, num_outer_iterations), flush=True)
            if iteration % checkpoint_interval == 0 or iteration == num_outer_iterations or interrupt.raised:
                manager.save(checkpoint_number=iteration)
            if interrupt.raised:
                writer.flush()
                raise RunInterruptedError(
                    f"Interrupted after outer iteration {iteration}; checkpoint saved in {root_dir}/checkpoints. "
                    f"Resume by running the same command again with --root_dir={root_dir}."
                )
    results = final_results(trainer)
    averaged = None
    if final_psi_average_fraction and results["outer_iterations"] > 0:
        averaged, first, last = psi_average.tail_average(trajectory.entries, final_psi_average_fraction)
        trainer.simulator.set_constrained_parameters(averaged)
        results["averaged_psi"] = trainer.constrained_psi()
        results["averaged_psi_iterations"] = [first, last]
        print(f"Final model and pictures use psi averaged over outer iterations {first}-{last}.", flush=True)
    if psi_selection_candidates and results["outer_iterations"] > 0:
        results.update(
            _select_psi(
                trainer,
                trajectory.entries,
                psi_selection_candidates,
                averaged,
                psi_selection_seeds,
                psi_selection_include_initial,
            )
        )
    if final_training or real_data_reference:
        results.update(_train_fresh_models(trainer, final_training, real_data_reference))
    pictures.write_psi_plot(os.path.join(root_dir, "psi_trajectory.png"), trajectory.entries)
    if pictures.is_image_simulator(trainer.simulator):
        _write_sample_pictures(root_dir, writer, trainer, trajectory.entries[0])
    writer.flush()
    write_json_atomically(os.path.join(root_dir, "results.json"), results)
    return results


def _select_psi(
    trainer,
    entries: list[dict],
    num_candidates: int,
    averaged_psi: dict | None,
    num_seeds: int = 1,
    include_initial: bool = False,
) -> dict:
    """Leaves the simulator at the best of the candidate psi; returns the results.json entries.

    `averaged_psi`: the tail-averaged psi (numpy values by name) as a further candidate, or None.
    `num_seeds`: fresh models per candidate (their mean is its score).
    `include_initial`: the psi of iteration 0 is a candidate too (listed first, so it loses ties).
    """
    iterations = psi_selection.candidate_iterations(entries, num_candidates)
    if include_initial:
        iterations = [0, *iterations]
    candidates = [(i, psi_selection.psi_at(entries, i)) for i in iterations]
    if averaged_psi is not None:
        candidates.append(("average", averaged_psi))
    with gin.config_scope("selection"):
        evaluator = ScratchTrainingEvaluator(**trainer.problem())
    best, table = psi_selection.select_psi(
        trainer.simulator, evaluator, candidates, seed=trainer.seed, num_seeds=num_seeds
    )
    for row in table:
        print(
            f"psi selection: candidate {row['candidate']}: fresh-model val accuracy {row['val_accuracy']:.3f} "
            f"(val loss {row['val_loss']:.4f})",
            flush=True,
        )
    print(f"Selected the psi of candidate {table[best]['candidate']} for the final model and pictures.", flush=True)
    return {
        "selected_psi": trainer.constrained_psi(),
        "selected_psi_candidate": table[best]["candidate"],
        "psi_selection": table,
        "selection_samples": int(sum(row["samples"] for row in table)),
    }


def _train_fresh_models(trainer, final_training: bool, real_data_reference: bool) -> dict:
    """Fresh models from the final (or averaged) psi (and on real validation data), scored on real test data."""
    results = {}
    problem = trainer.problem()
    if final_training:
        with gin.config_scope("final"):
            evaluator = ScratchTrainingEvaluator(**problem)
        results["final_model"] = evaluator.evaluate(seed=trainer.seed)
        print(
            f"Fresh model on {evaluator.num_samples} samples from the final psi: real test accuracy "
            f"{results['final_model']['test_accuracy']:.3f}",
            flush=True,
        )
    if real_data_reference:
        with gin.config_scope("reference"):
            evaluator = ScratchTrainingEvaluator(**problem)
        real = trainer.real_data
        scores = evaluator.train_and_score(
            tf.constant(real.validation_inputs), tf.constant(real.validation_labels), seed=trainer.seed
        )
        results["real_data_reference"] = {
            "test_accuracy": scores["test_accuracy"],
            "training_examples": len(real.validation_labels),
            "steps": scores["steps"],
        }
        print(f"Reference model on the real validation images: real test accuracy {scores['test_accuracy']:.3f}")
    return results


def _write_sample_pictures(root_dir: str, writer, trainer, initial_psi: dict) -> None:
    """`samples.png` (and TensorBoard): real images, renders at the initial and at the final psi."""
    seed = tf.constant([trainer.seed, 7])
    real = trainer.real_data
    final = pictures.render_examples(trainer.simulator, 20, seed)
    final_psi = trainer.simulator.constrained_parameters()
    trainer.simulator.set_constrained_parameters({k: v for k, v in initial_psi.items() if k != "iteration"})
    initial = pictures.render_examples(trainer.simulator, 20, seed)
    trainer.simulator.set_constrained_parameters(final_psi)
    pixels = pictures.write_sample_grid(
        os.path.join(root_dir, "samples.png"),
        [
            ("real", real.validation_inputs[:20], real.validation_labels[:20]),
            ("initial psi", *initial),
            ("final psi", *final),
        ],
    )
    pictures.image_summary(writer, "samples/real_initial_final", pixels, int(trainer.iteration.numpy()))
