"""The experiment entry point: build, restore, loop, checkpoint, summarise, hand off, write results.json.

`train_autosimulate` only runs the outer loop; everything after the last outer
iteration (averaging, selection, fresh models, pictures) is the `HandOff`'s job
(train/hand_off.py). Both are built before the first outer iteration, so a bad setting
anywhere fails before any rendering.
"""

import os
import signal

import gin
import tensorflow as tf
from absl import logging

from autosimulate_tf import results_schema as schema
from autosimulate_tf.errors import check
from autosimulate_tf.problem import Problem
from autosimulate_tf.train import pictures, results_io
from autosimulate_tf.train.diagnostics import HypergradientHealth
from autosimulate_tf.train.hand_off import HandOff
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


SUMMARY_SCALARS = (
    "val_loss",
    "val_accuracy",
    "inner_loss",
    "inner_gradient_norm",
    "validation_gradient_norm",
    "hypergradient_norm",
    "z_norm",
    "solver_residual",
    "solver_iterations",
    "negative_curvature",
    "influence_mean",
    "influence_std",
    schema.SIMULATED_SAMPLES,
    schema.HVP_COUNT,
    schema.WALL_CLOCK_S,
    "iteration_s",
)
# Written when an option produces them (the natural-gradient step, report_snr, the render-cost term).
OPTIONAL_SUMMARY_SCALARS = (
    "psi_step_kl",
    "psi_step_sampled_kl",
    "psi_step_size",
    "psi_step_backtracks",
    "psi_snr_median",
    "psi_snr_min",
    "render_cost_mean",
)


class _Summaries:
    """The run's TensorBoard writer, opened only when something is written (a finished run writes nothing)."""

    def __init__(self, root_dir: str):
        self._path = os.path.join(root_dir, "train")
        self._writer = None

    def writer(self):
        """The `tf.summary` writer of `<root_dir>/train`, created on first use."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._path)
        return self._writer

    def write(self, simulator, metrics: dict) -> None:
        """One outer iteration's scalars and every constrained psi component."""
        with self.writer().as_default(step=metrics["iteration"]):
            for name in SUMMARY_SCALARS + OPTIONAL_SUMMARY_SCALARS:
                if metrics.get(name) is not None:
                    tf.summary.scalar(name, float(metrics[name]))
            for name, value in simulator.constrained_parameters().items():
                for index, component in enumerate(tf.reshape(value, [-1]).numpy()):
                    tf.summary.scalar(f"psi/{name}/{index}", float(component))

    def flush(self) -> None:
        """Flushes the writer if one was opened."""
        if self._writer is not None:
            self._writer.flush()


def _progress_line(metrics: dict, total: int) -> str:
    accuracy = "" if metrics["val_accuracy"] is None else f"val_acc {metrics['val_accuracy']:.3f} "
    return (
        f"iter {metrics['iteration']:4d}/{total} | {accuracy}"
        f"val_loss {metrics['val_loss']:.4f} | |hypergrad| {metrics['hypergradient_norm']:.3g} "
        f"| solver res {metrics['solver_residual']:.3g} it {int(metrics['solver_iterations'])}"
        f"{' NEG-CURV' if metrics['negative_curvature'] else ''} "
        f"| |inner grad| {metrics['inner_gradient_norm']:.3g} | samples {metrics['simulated_samples']}"
        f"{' (dropped ' + str(metrics['dropped_samples']) + ')' if metrics['dropped_samples'] else ''}"
        f"{' | skipped updates ' + str(metrics['skipped_updates']) if metrics['skipped_updates'] else ''}"
        f" | {metrics['wall_clock_s']:.1f}s"
    )


def final_results(trainer) -> dict:
    """The run's summary (`results_schema.RESULTS_KEYS`): psi, real val/test scores before and after, costs."""
    return {
        schema.FINAL_PSI: trainer.constrained_psi(),
        **trainer.evaluate("validation"),
        **trainer.evaluate("test"),
        **trainer.initial_results(),
        schema.OUTER_ITERATIONS: int(trainer.iteration.numpy()),
        **trainer.cost_counters(),
    }


def _check_loop_settings(num_outer_iterations, checkpoint_interval, log_interval, max_checkpoints_to_keep) -> None:
    check(num_outer_iterations >= 0, f"train_autosimulate.num_outer_iterations={num_outer_iterations} must be >= 0.")
    for name, value in (
        ("checkpoint_interval", checkpoint_interval),
        ("log_interval", log_interval),
        ("max_checkpoints_to_keep", max_checkpoints_to_keep),
    ):
        check(value >= 1, f"train_autosimulate.{name}={value} must be >= 1.")


def _restore(trainer, root_dir: str, max_to_keep: int) -> tf.train.CheckpointManager:
    """The checkpoint manager of `root_dir/checkpoints`, with the latest checkpoint restored into `trainer`."""
    manager = tf.train.CheckpointManager(trainer.checkpoint(), os.path.join(root_dir, "checkpoints"), max_to_keep)
    if manager.latest_checkpoint:
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Restored %s (outer iteration %d).", manager.latest_checkpoint, int(trainer.iteration.numpy()))
        print(f"Resuming from {manager.latest_checkpoint} at outer iteration {int(trainer.iteration.numpy())}.")
    return manager


@gin.configurable
def train_autosimulate(
    root_dir: str,
    num_outer_iterations: int = 100,
    checkpoint_interval: int = 10,
    log_interval: int = 10,
    max_checkpoints_to_keep: int = 3,
    problem=None,
    trainer_factory=AutoSimulateTrainer,
    hand_off_factory=HandOff,
    health_factory=HypergradientHealth,
    history=None,
) -> dict:
    """Runs (or continues) an AutoSimulate experiment in `root_dir`.

    A run restarted with the same `root_dir` restores the latest checkpoint and
    continues; a finished run only re-reads what is done (the hand-off's steps are
    recorded in `hand_off.json`) and rewrites nothing that has not changed.

    Args:
      root_dir: output folder: checkpoints, TensorBoard `train/` summaries,
        `operative_config.gin`, `psi_trajectory.jsonl`, `results.json`, pictures.
      num_outer_iterations: total outer iterations of the run (0: no tuning, e.g.
        to score the untuned default with `HandOff.final_training`).
      checkpoint_interval: save every this many outer iterations (and at the end).
      log_interval: print a progress line every this many outer iterations.
      max_checkpoints_to_keep: checkpoints kept on disk.
      problem: the `Problem`; default: one built from its gin bindings.
      trainer_factory: builds the `AutoSimulateTrainer` from `problem=` (gin-configured).
      hand_off_factory: builds the `HandOff` from `problem=` (gin-configured).
      health_factory: builds the `HypergradientHealth` that warns when the hypergradient
        cannot be trusted (gin-configured); its warnings are in results.json.
      history: optional list; each iteration's metrics dict is appended to it.

    Returns:
      The dict written to `<root_dir>/results.json` (keys: `results_schema`).

    Raises:
      ConfigError: a bad setting, before any rendering.
      SimulatorFailureError: too many renders failed in one outer iteration; the
        last good state is checkpointed first.
      RunInterruptedError: SIGINT; a checkpoint is saved first.
    """
    _check_loop_settings(num_outer_iterations, checkpoint_interval, log_interval, max_checkpoints_to_keep)
    tf.io.gfile.makedirs(root_dir)
    problem = problem if problem is not None else Problem()
    hand_off = hand_off_factory(problem=problem)
    health = health_factory()
    trainer = trainer_factory(problem=problem)
    renderer = _renderer_info(problem.simulator)
    manager = _restore(trainer, root_dir, max_checkpoints_to_keep)
    summaries = _Summaries(root_dir)
    trajectory = pictures.PsiTrajectory(root_dir, int(trainer.iteration.numpy()))
    if not trajectory.entries:
        trajectory.append(0, trainer.constrained_psi())
    warnings_path = os.path.join(root_dir, "hypergradient_warnings.json")
    health.restore(_warnings_until(results_io.read_json(warnings_path) or [], int(trainer.iteration.numpy())))
    intervals = (num_outer_iterations, checkpoint_interval, log_interval)
    monitor = (health, warnings_path, history)
    _run_outer_iterations(trainer, manager, summaries, trajectory, root_dir, intervals, monitor)
    results = final_results(trainer)
    results[schema.HYPERGRADIENT_WARNINGS] = health.warnings
    if renderer is not None:
        results[schema.RENDERER] = renderer
    results.update(hand_off.run(root_dir, trajectory.entries, trainer.seed, summaries.writer))
    summaries.flush()
    path = os.path.join(root_dir, "results.json")
    if results_io.read_json(path) != results:
        results_io.write_json_atomically(path, results)
    return results


def _renderer_info(simulator) -> dict | None:
    """The simulator's `renderer_info()` (printed, and kept for results.json), or None when it has none."""
    describe = getattr(simulator, "renderer_info", None)
    if describe is None:
        return None
    info = describe()
    print("Renderer: " + ", ".join(f"{key} {value}" for key, value in info.items()), flush=True)
    return info


def _warnings_until(warnings: list[dict], iteration: int) -> list[dict]:
    """The recorded warnings raised at or before `iteration` (later ones belong to work redone now)."""
    return [warning for warning in warnings if warning["iteration"] <= iteration]


def _run_outer_iterations(trainer, manager, summaries, trajectory, root_dir, intervals, monitor) -> None:
    """Steps the trainer until `num_outer_iterations`, writing summaries, psi, warnings and checkpoints."""
    num_outer_iterations, checkpoint_interval, log_interval = intervals
    health, warnings_path, history = monitor
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
            summaries.write(trainer.simulator, metrics)
            if health.observe(metrics):
                results_io.write_json_atomically(warnings_path, health.warnings)
            trajectory.append(iteration, trainer.constrained_psi())
            if iteration == 1 or not os.path.exists(os.path.join(root_dir, "operative_config.gin")):
                results_io.write_operative_config(root_dir, summaries.writer())
            if iteration % log_interval == 0 or iteration == num_outer_iterations:
                print(_progress_line(metrics, num_outer_iterations), flush=True)
            if iteration % checkpoint_interval == 0 or iteration == num_outer_iterations or interrupt.raised:
                manager.save(checkpoint_number=iteration)
            if interrupt.raised:
                summaries.flush()
                raise RunInterruptedError(
                    f"Interrupted after outer iteration {iteration}; checkpoint saved in {root_dir}/checkpoints. "
                    f"Resume by running the same command again with --root_dir={root_dir}."
                )
