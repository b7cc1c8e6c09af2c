"""The AutoSimulate outer loop: one object owns the run's state and advances it.

One outer iteration (DESIGN.md section 2), one method per phase of `step`:
  1. `_render`: sample `c_1..c_N ~ p(.|psi_t)` with a stateless seed; render `D_t`
     off-tape (plus the reused renders of earlier iterations, train/reuse.py);
  2. `_train_inner`: E steps on `D_t`, warm-started (from fresh weights after a restart);
  3. `_update`: validation gradient, solver, influence weights
     (`HypergradientEstimator`), the step rule (hypergrad/step_rules.py), then the
     optimizer step on psi;
  4. `_metrics`: counters and diagnostics of the iteration.

The trainer owns the task model, the inner and outer optimizers, psi (through the
problem's simulator), the previous solver solution (CG warm start), the iteration
counter and the cost counters. Seeds are derived from `(seed, iteration)`, so a run
restored from a checkpoint replays exactly what an uninterrupted run would do.
"""

import time

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from autosimulate_tf import results_schema as schema
from autosimulate_tf import tracing
from autosimulate_tf.data import pipeline
from autosimulate_tf.hypergrad import tree_math
from autosimulate_tf.hypergrad.estimator import GeneratedData, HypergradientEstimator
from autosimulate_tf.hypergrad.objective import TaskObjective
from autosimulate_tf.hypergrad.sharding import Sharding
from autosimulate_tf.hypergrad.step_rules import PlainStep
from autosimulate_tf.train import optimizers, reuse, task_training
from autosimulate_tf.train.model_restarts import ModelRestarts
from autosimulate_tf.train.trainer_settings import check_settings


class SimulatorFailureError(RuntimeError):
    """Too many renders of one outer iteration failed (above `max_failure_rate`)."""


@gin.configurable
class AutoSimulateTrainer:
    """State and step of an AutoSimulate run."""

    def __init__(
        self,
        problem,
        num_samples: int = 200,
        num_inner_steps: int = 30,
        num_initial_inner_steps: int = 200,
        inner_batch_size: int = 64,
        inner_optimizer=None,
        outer_optimizer=None,
        weight_decay: float = 1e-4,
        estimator=None,
        step_rule=None,
        max_failure_rate: float = 0.5,
        render_timeout_s: float | None = None,
        strategy=None,
        reuse_iterations: int = 0,
        reuse_weighting: str = reuse.PER_SAMPLE,
        reinitialize_every: int = 0,
        seed: int = 0,
    ):
        """Args:
        problem: the `Problem` (simulator, real data, model factory, loss).
        num_samples: N, latents sampled and rendered per outer iteration (>= 2).
        num_inner_steps: E, warm-started inner steps per outer iteration.
        num_initial_inner_steps: inner steps in the first outer iteration.
        inner_batch_size: minibatch size of the inner steps.
        inner_optimizer: factory of the Keras optimizer for theta
          (default Adam(1e-2)); bind in gin scope `inner/`.
        outer_optimizer: factory of the Keras optimizer for psi
          (default Adam(5e-2)); bind in gin scope `outer/`.
        weight_decay: L2 coefficient of the training loss (part of the curvature).
        estimator: the `HypergradientEstimator` (curvature, damping, solver,
          baseline, solver warm start); default: one built from its gin bindings.
        step_rule: how the hypergradient becomes the psi step (hypergrad/step_rules.py):
          None or `PlainStep()` hands it to the outer optimizer; `NaturalGradientStep()`
          takes a Fisher-preconditioned step of bounded KL through plain SGD.
        max_failure_rate: stop the run (after checkpointing the last good state)
          when more than this fraction of one iteration's renders fail.
        render_timeout_s: a Python render taking longer counts as failed (None: no limit).
        strategy: a `tf.distribute.Strategy` (e.g. `@tf.distribute.MirroredStrategy()`)
          for the task model: its variables are mirrored, and inner steps,
          validation gradient, curvature products and influence weights run
          data-parallel over the replicas. None: the current (default) strategy.
        reuse_iterations: W >= 0. Each outer iteration also trains on, and scores, the
          renders of the previous W iterations, importance-weighted to the current
          psi (train/reuse.py; curvature products stay unweighted). 0: no reuse (the
          estimator of the paper).
        reuse_weighting: q of the importance weights, `"per_sample"` or `"mixture"`.
        reinitialize_every: K >= 0. At outer iterations K, 2K, ... theta restarts from fresh
          initial weights and trains `num_initial_inner_steps` (train/model_restarts.py).
          0 (default): warm start throughout, as in the paper.
        seed: experiment seed; every random draw (and the model's initial
          weights) derives from it statelessly.

        Raises:
          ConfigError: naming the bad setting, before any rendering.
        """
        check_settings(dict(locals()))
        self.problem = problem
        self.simulator = problem.simulator
        self.num_samples = int(num_samples)
        self.num_inner_steps = int(num_inner_steps)
        self.num_initial_inner_steps = int(num_initial_inner_steps)
        self.inner_batch_size = int(inner_batch_size)
        self.max_failure_rate = float(max_failure_rate)
        self.render_timeout_s = render_timeout_s
        self.seed = int(seed)
        self.estimator = estimator if estimator is not None else HypergradientEstimator()
        self.estimator.check_simulator(self.simulator)
        self.estimator.check_loss(problem.loss)
        self.step_rule = step_rule if step_rule is not None else PlainStep()
        self.sharding = Sharding(strategy)
        self._build_model(inner_optimizer, outer_optimizer, weight_decay)
        self.restarts = ModelRestarts(reinitialize_every, self.seed, self.model, problem)
        self._build_state(reuse_iterations, reuse_weighting)
        # A simulator that cannot render at all fails here, before any training.
        pipeline.preflight_render(self.simulator, tf.constant([self.seed, 1]), render_timeout_s=render_timeout_s)
        self._inner_train_fn = tracing.compile_function(self._inner_train, reduce_retracing=True)
        self._hypergradient_fn = tracing.compile_function(self._hypergradient, reduce_retracing=True)
        self._evaluate_fn = tracing.compile_function(self._evaluate, reduce_retracing=True)
        self._update_psi_fn = tracing.compile_function(self._apply_psi_update)
        self._combine_fn = (
            tracing.compile_function(self.reuse_buffer.combine, reduce_retracing=True) if self.reuse_buffer else None
        )
        self._traced_for_any_size = False

    def _build_model(self, inner_optimizer, outer_optimizer, weight_decay) -> None:
        """The task model, its objective and both optimizers (learning rates checked)."""
        # Model and inner optimizer variables are created in the strategy's scope (mirrored
        # across replicas); psi and the outer optimizer stay on the driver.
        with self.sharding.scope():
            # The experiment seed also seeds the model's initial weights.
            self.model = self.problem.build_model(seed=self.seed)
            self.inner_optimizer = inner_optimizer() if inner_optimizer else keras.optimizers.Adam(1e-2)
            # Build optimizer slots now so checkpoints restore into existing variables.
            self.inner_optimizer.build(self.model.trainable_variables)
        self.objective = TaskObjective(self.model, self.problem.loss, weight_decay, sharding=self.sharding)
        self.outer_optimizer = outer_optimizer() if outer_optimizer else keras.optimizers.Adam(5e-2)
        optimizers.check_learning_rate(self.inner_optimizer, "inner")
        optimizers.check_learning_rate(self.outer_optimizer, "outer")
        self.step_rule.check_optimizer(self.outer_optimizer)
        self.outer_optimizer.build(self.simulator.psi_variables)
        dtype = self.model.inputs[0].dtype
        self._validation = self.problem.real_split("validation", dtype)
        self._test = self.problem.real_split("test", dtype)

    def _build_state(self, reuse_iterations: int, reuse_weighting: str) -> None:
        """Iteration, counters, clock, the solver warm start, initial scores and the reuse buffer."""
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.counters = {
            name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name) for name in schema.TRAINER_COUNTERS
        }
        self.clocks = {name: tf.Variable(0.0, dtype=tf.float64, trainable=False, name=name) for name in schema.CLOCKS}
        self.previous_z = [
            tf.Variable(tf.zeros_like(v.value), trainable=False, name="previous_z")
            for v in self.model.trainable_variables
        ]
        # schema.INITIAL_SCORES, NaN until the first outer iteration has trained the model.
        self.initial_scores = tf.Variable(tf.fill([len(schema.INITIAL_SCORES)], np.nan), name="initial_scores")
        self.reuse_buffer = None
        if reuse_iterations:
            dtype = self.model.inputs[0].dtype
            self.reuse_buffer = reuse.ReuseBuffer(
                self.simulator, reuse_iterations, self.num_samples, dtype, reuse_weighting
            )

    # ------------------------------------------------------------------ state
    def checkpoint(self) -> tf.train.Checkpoint:
        """Everything needed to continue the run exactly."""
        extra = {"reuse_buffer": self.reuse_buffer} if self.reuse_buffer is not None else {}
        return tf.train.Checkpoint(
            **extra,
            model=self.model,
            inner_optimizer=self.inner_optimizer,
            outer_optimizer=self.outer_optimizer,
            simulator=self.simulator,
            iteration=self.iteration,
            **{f"clock_{name}": variable for name, variable in self.clocks.items()},
            previous_z=self.previous_z,
            initial_scores=self.initial_scores,
            **{f"counter_{name}": variable for name, variable in self.counters.items()},
        )

    def _iteration_seeds(self, iteration: int):
        """(sample seed, inner-training seed) for one outer iteration, derived statelessly."""
        base = tf.random.experimental.stateless_fold_in(tf.constant([self.seed, 0], tf.int64), iteration)
        seeds = tf.random.experimental.stateless_split(base, 2)
        return seeds[0], seeds[1]

    def tracing_counts(self) -> dict[str, int]:
        """How often each compiled phase has been traced (a diagnostic: 1 each in a healthy run)."""
        return {
            "inner_training": self._inner_train_fn.experimental_get_tracing_count(),
            "hypergradient": self._hypergradient_fn.experimental_get_tracing_count(),
        }

    # ------------------------------------------------------------------ compiled pieces
    def _inner_train(self, generated: GeneratedData, num_steps, seed):
        """`num_steps` minibatch optimizer steps on `D_t`, warm-started from the current theta.

        Importance weights of reused samples weight each example's loss, so theta is
        trained towards the current psi's data distribution.
        """
        return task_training.minibatch_steps(
            self.objective,
            self.inner_optimizer,
            generated.inputs,
            generated.labels,
            num_steps,
            seed,
            self.inner_batch_size,
            generated.importance_weights,
        )

    def _hypergradient(self, generated: GeneratedData):
        """Steps 3-5 and the step rule, no update: `(estimate + step diagnostics, step gradients, all finite)`."""
        initial_guess = [tf.convert_to_tensor(v) for v in self.previous_z]
        result = self.estimator.estimate(
            self.objective, self.simulator, self.objective.current_weights(), generated, self._validation, initial_guess
        )
        learning_rate, weights = self.outer_optimizer.learning_rate, generated.importance_weights
        step = self.step_rule.transform(result.gradients, self.simulator, generated.latents, learning_rate, weights)
        # A NaN validation gradient can hide behind a finite z (CG stops at once on a NaN residual), so it is
        # checked on its own.
        finite = tf.reduce_all(
            [
                tree_math.all_finite(result.gradients),
                tree_math.all_finite(step.gradients),
                tree_math.all_finite(result.z),
                tf.math.is_finite(result.diagnostics["validation_gradient_norm"]),
                tf.math.is_finite(result.diagnostics["validation_loss"]),
            ]
        )
        return result._replace(diagnostics={**result.diagnostics, **step.diagnostics}), step.gradients, finite

    def _evaluate(self, inputs, labels):
        return task_training.score(self.model, self.problem.loss, inputs, labels)

    def evaluate(self, split: str = "validation") -> dict:
        """`{val_loss, val_accuracy}` (or `test_*`) of the current model on a real split; accuracy None for regression."""
        prefix, data = ("val", self._validation) if split == "validation" else ("test", self._test)
        return task_training.as_scores(prefix, self._evaluate_fn(*data), self.problem.is_classification)

    def _apply_psi_update(self, gradients):
        """Compiled body of `apply_psi_update`: an eager Keras optimizer step plus the finiteness
        checks cost ~6 ms, which on the GMM toy was a sixth of an outer iteration.

        The optimizer's moments keep the step even when psi is restored.
        """
        psi = self.simulator.psi_variables
        previous = [tf.identity(variable) for variable in psi]
        self.outer_optimizer.apply_gradients(zip(gradients, psi, strict=True))
        constrained = [self.simulator.parameter(name) for name in self.simulator.parameter_names]
        finite = tf.logical_and(tree_math.all_finite(list(psi)), tree_math.all_finite(constrained))
        for variable, value in zip(psi, previous, strict=True):
            variable.assign(tf.where(finite, variable, value))
        return finite

    def apply_psi_update(self, gradients) -> bool:
        """Applies the outer step; undoes it if psi became non-finite. Returns whether it stuck."""
        return bool(self._update_psi_fn(gradients))

    # ------------------------------------------------------------------ one outer iteration
    def step(self) -> dict:
        """Runs one outer iteration and returns its metrics (plain Python numbers)."""
        start = time.perf_counter()
        iteration = int(self.iteration.numpy())
        sample_seed, inner_seed = self._iteration_seeds(iteration)
        generated, num_dropped = self._render(iteration, sample_seed)
        render_done = time.perf_counter()
        restarted = self.restarts.due(iteration)
        if restarted:
            with self.sharding.scope():
                self.restarts.restart(iteration, self.model, self.inner_optimizer, self.previous_z)
        num_steps, inner_loss, nonfinite_inner = self._train_inner(iteration, generated, inner_seed, restarted)
        inner_done = time.perf_counter()
        untimed_s = self._record_initial_scores() if iteration == 0 else 0.0
        diagnostics, updated = self._update(generated, iteration)
        hypergradient_done = time.perf_counter()
        self._count(num_dropped, num_steps, nonfinite_inner, diagnostics["hvp_count"], updated)
        # The accuracy that decides whether the target is reached is part of the timed work, as
        # the baselines' validation scoring is part of theirs.
        validation = self.evaluate("validation")
        elapsed = time.perf_counter() - start - untimed_s
        self.clocks[schema.WALL_CLOCK_S].assign_add(elapsed)
        self.clocks[schema.RENDER_WALL_CLOCK_S].assign_add(render_done - start)
        timings = {
            "render_s": render_done - start,
            "inner_s": inner_done - render_done,
            "hypergradient_s": hypergradient_done - inner_done - untimed_s,
            "iteration_s": elapsed,
        }
        metrics = self._metrics(iteration, diagnostics, generated, validation, timings)
        metrics.update(inner_loss=float(inner_loss), num_dropped=num_dropped, update_skipped=not updated)
        metrics["model_restarted"] = restarted
        return metrics

    def _render(self, iteration: int, seed) -> tuple[GeneratedData, int]:
        """Phase 1: N new latents and their renders, plus the reused ones; `(D_t, renders dropped)`."""
        latents = self.simulator.sample_latents(self.num_samples, seed=seed)
        rendered = pipeline.render_latents(self.simulator, latents, render_timeout_s=self.render_timeout_s)
        inputs, labels, latents, num_dropped = pipeline.keep_valid(rendered, latents)
        if num_dropped > self.max_failure_rate * self.num_samples or int(inputs.shape[0]) < 2:
            # Raised before any state changes: the trainer still holds the last good state.
            raise SimulatorFailureError(
                f"{num_dropped} of {self.num_samples} renders failed at outer iteration {iteration + 1}, above "
                f"AutoSimulateTrainer.max_failure_rate={self.max_failure_rate}."
            )
        inputs = tf.cast(inputs, self.model.inputs[0].dtype)
        if self.reuse_buffer is None:
            return GeneratedData(inputs, labels, latents), num_dropped
        combined = self._combine_fn(inputs, labels, latents, tf.constant(iteration, tf.int64))
        return GeneratedData(*combined), num_dropped

    def _train_inner(self, iteration: int, generated: GeneratedData, seed, restarted: bool):
        """Phase 2: the warm-started inner steps (from scratch after a restart); `(steps, last loss, non-finite)`."""
        num_steps = self.num_initial_inner_steps if iteration == 0 or restarted else self.num_inner_steps
        num_steps_tensor = tf.constant(num_steps)
        if self.reuse_buffer is not None and not self._traced_for_any_size:
            reuse.trace_for_any_size(self._inner_train_fn, self._hypergradient_fn, generated, num_steps_tensor, seed)
            self._traced_for_any_size = True
        inner_loss, nonfinite = self._inner_train_fn(generated, num_steps_tensor, seed)
        return num_steps, inner_loss, nonfinite

    def _record_initial_scores(self) -> float:
        """Scores the model trained on the initial psi, before its first update; returns the time taken."""
        start = time.perf_counter()
        scores = {**self.evaluate("validation"), **self.evaluate("test")}
        values = [np.nan if scores[name] is None else scores[name] for name in schema.SCORES]
        self.initial_scores.assign(tf.constant(values, tf.float32))
        return time.perf_counter() - start

    def _update(self, generated: GeneratedData, iteration: int) -> tuple[dict, bool]:
        """Phase 3: the hypergradient and the psi step; `(diagnostics as floats, whether psi moved)`."""
        result, step_gradients, finite = self._hypergradient_fn(generated)
        updated = bool(finite) and self.apply_psi_update(step_gradients)
        if updated:
            for variable, value in zip(self.previous_z, result.z, strict=True):
                variable.assign(value)
        else:
            logging.warning("Non-finite hypergradient or psi at outer iteration %d: psi update skipped.", iteration + 1)
        return {name: float(value) for name, value in result.diagnostics.items()}, updated

    def _count(self, num_dropped: int, num_steps: int, nonfinite_inner, hvp_count: float, updated: bool) -> None:
        """Adds one iteration's costs to the checkpointed counters."""
        for name, amount in (
            (schema.SIMULATED_SAMPLES, self.num_samples),
            (schema.DROPPED_SAMPLES, num_dropped),
            (schema.NONFINITE_INNER_GRADIENTS, int(nonfinite_inner)),
            (schema.MODEL_STEPS, num_steps),
            (schema.HVP_COUNT, int(hvp_count)),
            (schema.OBJECTIVE_EVALUATIONS, 1),
            (schema.SKIPPED_UPDATES, 0 if updated else 1),
        ):
            self.counters[name].assign_add(amount)
        self.iteration.assign_add(1)

    def _metrics(self, iteration: int, diagnostics: dict, generated, validation: dict, timings: dict) -> dict:
        """Phase 4: the iteration's metrics: diagnostics, scores, timings and cumulative counters."""
        metrics = dict(diagnostics)
        if generated.importance_weights is not None:
            metrics["reuse_effective_sample_fraction"] = reuse.effective_sample_fraction(generated.importance_weights)
        metrics.update(iteration=iteration + 1, **validation, **timings)
        metrics.update(self.cost_counters())
        return metrics

    def cost_counters(self) -> dict:
        """The checkpointed counters and the wall-clock, as plain numbers by `results_schema` name."""
        counters = {name: int(variable.numpy()) for name, variable in self.counters.items()}
        return {**counters, **{name: float(variable.numpy()) for name, variable in self.clocks.items()}}

    def initial_results(self) -> dict:
        """`results_schema.INITIAL_SCORES` by name (None before the first iteration, and for accuracies in regression)."""
        values = self.initial_scores.numpy()
        return {
            name: None if np.isnan(value) else float(value)
            for name, value in zip(schema.INITIAL_SCORES, values, strict=True)
        }

    def constrained_psi(self) -> dict:
        """psi as constrained values, JSON-ready lists, by name."""
        return self.simulator.constrained_parameters_as_lists()
