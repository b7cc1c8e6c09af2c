"""The experiment entry point: restore, loop, checkpoint, summarise, write results.json."""

import json
import os

import gin
import tensorflow as tf
from absl import logging

from autosimulate_tf.train.trainer import AutoSimulateTrainer

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
    with tf.io.gfile.GFile(os.path.join(root_dir, "operative_config.gin"), "w") as f:
        f.write(config)
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
        f"| |inner grad| {metrics['inner_gradient_norm']:.3g} | samples {metrics['simulated_samples']} "
        f"| {metrics['wall_clock_s']:.1f}s"
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
    history=None,
) -> dict:
    """Runs (or continues) an AutoSimulate experiment in `root_dir`.

    A run restarted with the same `root_dir` restores the latest checkpoint and
    continues; a finished run only rewrites `results.json`.

    Args:
      root_dir: output folder: checkpoints, TensorBoard `train/` summaries,
        `operative_config.gin`, `results.json`.
      num_outer_iterations: total outer iterations of the run (>= 1).
      checkpoint_interval: save every this many outer iterations (and at the end).
      log_interval: print a progress line every this many outer iterations.
      max_checkpoints_to_keep: checkpoints kept on disk.
      trainer_factory: builds the `AutoSimulateTrainer` (gin-configured).
      history: optional list; each iteration's metrics dict is appended to it.

    Returns:
      The dict written to `<root_dir>/results.json`.
    """
    for name, value in (
        ("num_outer_iterations", num_outer_iterations),
        ("checkpoint_interval", checkpoint_interval),
        ("log_interval", log_interval),
        ("max_checkpoints_to_keep", max_checkpoints_to_keep),
    ):
        if value < 1:
            raise ValueError(f"train_autosimulate.{name}={value} must be >= 1.")
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

    while int(trainer.iteration.numpy()) < num_outer_iterations:
        metrics = trainer.step()
        iteration = metrics["iteration"]
        if history is not None:
            history.append(metrics)
        _write_summaries(writer, trainer, metrics)
        if iteration == 1 or not os.path.exists(os.path.join(root_dir, "operative_config.gin")):
            write_operative_config(root_dir, writer)
        if iteration % log_interval == 0 or iteration == num_outer_iterations:
            print(_progress_line(metrics, num_outer_iterations), flush=True)
        if iteration % checkpoint_interval == 0 or iteration == num_outer_iterations:
            manager.save(checkpoint_number=iteration)
    writer.flush()

    results = final_results(trainer)
    with tf.io.gfile.GFile(os.path.join(root_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    return results
