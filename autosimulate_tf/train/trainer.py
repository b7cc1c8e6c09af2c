"""The AutoSimulate outer loop: one object owns the run's state and advances it.

One outer iteration (DESIGN.md section 2):
  1. sample `c_1..c_N ~ p(.|psi_t)` with a stateless seed; render `D_t` off-tape;
  2. continue training theta (warm start) for E steps on `D_t`;
  3-5. validation gradient, solver, influence weights (`estimate_hypergradient`);
  6. optimizer step on psi from the surrogate-loss gradient.

The trainer owns the task model, the inner and outer optimizers, psi (through the
simulator), the previous solver solution (CG warm start), the iteration counter
and the cost counters. Seeds are derived from `(seed, iteration)`, so a run
restored from a checkpoint replays exactly what an uninterrupted run would do.
"""

import time

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from autosimulate_tf import tracing
from autosimulate_tf.data import pipeline
from autosimulate_tf.hypergrad import curvature as curvature_lib
from autosimulate_tf.hypergrad import estimator, influence, solvers, tree_math
from autosimulate_tf.hypergrad.objective import TaskObjective
from autosimulate_tf.hypergrad.sharding import Sharding
from autosimulate_tf.models import losses

# Keras optimizers, configurable in gin scopes, e.g. `inner/keras.optimizers.Adam.learning_rate`.
# (`gin.tf` cannot be imported on TF >= 2.16, so we register them ourselves.)
for _optimizer in (keras.optimizers.Adam, keras.optimizers.SGD, keras.optimizers.RMSprop):
    gin.external_configurable(_optimizer, module="keras.optimizers")
# Learning-rate schedules, e.g. `outer/keras.optimizers.Adam.learning_rate = @keras.optimizers.schedules.CosineDecay()`.
for _schedule in (keras.optimizers.schedules.CosineDecay, keras.optimizers.schedules.ExponentialDecay):
    gin.external_configurable(_schedule, module="keras.optimizers.schedules")

REUSE_PER_SAMPLE = "per_sample"
REUSE_MIXTURE = "mixture"
REUSE_WEIGHTINGS = (REUSE_PER_SAMPLE, REUSE_MIXTURE)

COUNTERS = (
    "simulated_samples",
    "nonfinite_inner_gradients",
    "dropped_samples",
    "inner_steps",
    "hvp_count",
    "objective_evaluations",
    "skipped_updates",
)


class SimulatorFailureError(RuntimeError):
    """Too many renders of one outer iteration failed (above `max_failure_rate`)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@gin.configurable
class AutoSimulateTrainer:
    """State and step of an AutoSimulate run."""

    def __init__(
        self,
        simulator=gin.REQUIRED,
        real_data=gin.REQUIRED,
        model_fn=gin.REQUIRED,
        loss: str = losses.SOFTMAX_CROSS_ENTROPY,
        num_samples: int = 200,
        num_inner_steps: int = 30,
        num_initial_inner_steps: int = 200,
        inner_batch_size: int = 64,
        inner_optimizer=None,
        outer_optimizer=None,
        weight_decay: float = 1e-4,
        curvature: str = curvature_lib.GAUSS_NEWTON,
        damping: float = 0.1,
        solver=solvers.conjugate_gradient,
        baseline: str = influence.LEAVE_ONE_OUT,
        warm_start_solver: bool = True,
        max_failure_rate: float = 0.5,
        render_timeout_s: float | None = None,
        strategy=None,
        reuse_iterations: int = 0,
        reuse_weighting: str = REUSE_PER_SAMPLE,
        seed: int = 0,
    ):
        """Args:
        simulator: a `Simulator` instance (its variables are psi).
        real_data: a `RealData` (validation set for the hypergradient, test set
          for reporting only).
        model_fn: factory `(input_shape, num_outputs, seed) -> keras.Model`.
        loss: task loss name.
        num_samples: N, latents sampled and rendered per outer iteration (>= 2).
        num_inner_steps: E, warm-started inner steps per outer iteration.
        num_initial_inner_steps: inner steps in the first outer iteration.
        inner_batch_size: minibatch size of the inner steps.
        inner_optimizer: factory of the Keras optimizer for theta
          (default Adam(1e-2)); bind in gin scope `inner/`.
        outer_optimizer: factory of the Keras optimizer for psi
          (default Adam(5e-2)); bind in gin scope `outer/`.
        weight_decay: L2 coefficient of the training loss (part of the curvature).
        curvature: `"gauss_newton"` or `"hessian"`.
        damping: lambda >= 0 added to the curvature.
        solver: a solver function from `autosimulate_tf.hypergrad.solvers`.
        baseline: `"leave_one_out"` or `"none"`.
        warm_start_solver: start each solve from the previous `z`.
        max_failure_rate: stop the run (after checkpointing the last good state)
          when more than this fraction of one iteration's renders fail.
        render_timeout_s: a Python render taking longer counts as failed
          (None: no limit).
        strategy: a `tf.distribute.Strategy` (e.g. `@tf.distribute.MirroredStrategy()`)
          for the task model: its variables are mirrored, and inner steps,
          validation gradient, curvature products and influence weights run
          data-parallel over the replicas. None: the current (default) strategy.
        reuse_iterations: W >= 0. Each outer iteration also trains on, and
          scores, the renders of the previous W iterations, so only N new samples
          are rendered per iteration while the hypergradient sees up to
          (W + 1) N. Old samples get self-normalised importance weights
          `p(c | psi_t) / p(c | psi_then)` in the inner training loss and in the
          score-function term, which keeps it an estimate of the gradient under
          the current psi (curvature products stay unweighted). The kept renders are
          part of the checkpoint. 0: no reuse (the estimator of the paper).
        reuse_weighting: the q of the importance weights of a reused set.
          `"per_sample"`: each sample's own psi, `p(c | psi_t) / p(c | psi_then)`.
          `"mixture"`: the mixture of the psi of all W + 1 iterations in the set,
          weighted by their sample counts (the balance heuristic of multiple
          importance sampling, Veach and Guibas 1995), `p(c | psi_t) / sum_k
          (n_k / n) p(c | psi_k)`: never larger than n / n_t, so one old sample
          cannot dominate; it costs W + 1 `log_prob` evaluations of the set.
        seed: experiment seed; every random draw (and the model's initial
          weights) derives from it statelessly.
        """
        _check(num_samples >= 2, f"AutoSimulateTrainer.num_samples={num_samples} must be >= 2.")
        _check(num_inner_steps >= 0, f"AutoSimulateTrainer.num_inner_steps={num_inner_steps} must be >= 0.")
        _check(
            num_initial_inner_steps >= 0,
            f"AutoSimulateTrainer.num_initial_inner_steps={num_initial_inner_steps} must be >= 0.",
        )
        _check(inner_batch_size >= 1, f"AutoSimulateTrainer.inner_batch_size={inner_batch_size} must be >= 1.")
        _check(damping >= 0, f"AutoSimulateTrainer.damping={damping} must be >= 0.")
        _check(weight_decay >= 0, f"AutoSimulateTrainer.weight_decay={weight_decay} must be >= 0.")
        _check(
            curvature in curvature_lib.CURVATURES,
            f"AutoSimulateTrainer.curvature={curvature!r} is not one of {curvature_lib.CURVATURES}.",
        )
        _check(
            baseline in influence.BASELINES,
            f"AutoSimulateTrainer.baseline={baseline!r} is not one of {influence.BASELINES}.",
        )
        _check(callable(solver), f"AutoSimulateTrainer.solver={solver!r} is not a solver function.")
        _check(reuse_iterations >= 0, f"AutoSimulateTrainer.reuse_iterations={reuse_iterations} must be >= 0.")
        _check(
            reuse_weighting in REUSE_WEIGHTINGS,
            f"AutoSimulateTrainer.reuse_weighting={reuse_weighting!r} is not one of {REUSE_WEIGHTINGS}.",
        )
        _check(
            0.0 < max_failure_rate <= 1.0,
            f"AutoSimulateTrainer.max_failure_rate={max_failure_rate} must be in (0, 1].",
        )
        _check(
            render_timeout_s is None or render_timeout_s > 0,
            f"AutoSimulateTrainer.render_timeout_s={render_timeout_s} must be > 0 (or None).",
        )
        losses.check_loss_name(loss)
        self.simulator = simulator
        self.real_data = real_data
        self.loss = loss
        self.num_samples = int(num_samples)
        self.num_inner_steps = int(num_inner_steps)
        self.num_initial_inner_steps = int(num_initial_inner_steps)
        self.inner_batch_size = int(inner_batch_size)
        self.curvature = curvature
        self.damping = float(damping)
        self.solver = solver
        self.baseline = baseline
        self.warm_start_solver = bool(warm_start_solver)
        self.max_failure_rate = float(max_failure_rate)
        self.render_timeout_s = render_timeout_s
        self.reuse_iterations = int(reuse_iterations)
        self.reuse_weighting = reuse_weighting
        self.seed = int(seed)

        num_outputs = simulator.num_classes if simulator.num_classes else int(np.prod(simulator.label_shape or (1,)))
        self.model_fn = model_fn
        self.num_outputs = num_outputs
        self.sharding = Sharding(strategy)
        # Model and inner optimizer variables are created in the strategy's scope (mirrored
        # across replicas); psi and the outer optimizer stay on the driver.
        with self.sharding.scope():
            # The experiment seed also seeds the model's initial weights.
            self.model = model_fn(input_shape=tuple(simulator.observation_shape), num_outputs=num_outputs, seed=seed)
            self.inner_optimizer = inner_optimizer() if inner_optimizer else keras.optimizers.Adam(1e-2)
            # Build optimizer slots now so checkpoints restore into existing variables.
            self.inner_optimizer.build(self.model.trainable_variables)
        self._check_shapes()
        # A simulator that cannot render at all fails here, before any training.
        pipeline.preflight_render(simulator, tf.constant([self.seed, 1]), render_timeout_s=render_timeout_s)
        self.objective = TaskObjective(self.model, loss, weight_decay, sharding=self.sharding)
        self.outer_optimizer = outer_optimizer() if outer_optimizer else keras.optimizers.Adam(5e-2)
        self._check_learning_rate(self.inner_optimizer, "inner")
        self._check_learning_rate(self.outer_optimizer, "outer")
        self.outer_optimizer.build(simulator.psi_variables)

        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.counters = {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name) for name in COUNTERS}
        self.wall_clock_s = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_clock_s")
        self.previous_direction = [
            tf.Variable(tf.zeros_like(v.value), trainable=False, name="previous_direction")
            for v in self.model.trainable_variables
        ]
        self._validation = (
            tf.constant(real_data.validation_inputs, self.model.inputs[0].dtype),
            tf.constant(real_data.validation_labels),
        )
        self._test = (
            tf.constant(real_data.test_inputs, self.model.inputs[0].dtype),
            tf.constant(real_data.test_labels),
        )
        self.reuse_buffer = self._make_reuse_buffer() if self.reuse_iterations else None
        self._with_reused_samples_fn = tracing.compile_function(self._with_reused_samples, reduce_retracing=True)
        self._inner_train_fn = tracing.compile_function(self._inner_train, reduce_retracing=True)
        self._hypergradient_fn = tracing.compile_function(self._hypergradient, reduce_retracing=True)
        self._evaluate_fn = tracing.compile_function(self._evaluate, reduce_retracing=True)
        self._update_psi_fn = tracing.compile_function(self._apply_psi_update)
        self._traced_for_any_size = False

    # ------------------------------------------------------------------ checks
    def _check_shapes(self) -> None:
        """Fails fast when simulator output, model input and real data disagree."""
        observation_shape = tuple(self.simulator.observation_shape)
        model_input_shape = tuple(self.model.inputs[0].shape[1:])
        _check(
            model_input_shape == observation_shape,
            f"Model input shape {model_input_shape} does not match the simulator's observation_shape "
            f"{observation_shape} (check the model_fn and simulator bindings).",
        )
        for split in ("validation", "test"):
            shape = tuple(np.shape(getattr(self.real_data, f"{split}_inputs"))[1:])
            _check(
                shape == observation_shape,
                f"Real {split} inputs have shape {shape} per example but the simulator renders "
                f"{observation_shape} (check the real_data and simulator bindings).",
            )

    @staticmethod
    def _check_learning_rate(optimizer, scope: str) -> None:
        learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        _check(
            learning_rate > 0 and np.isfinite(learning_rate),
            f"{scope}/ optimizer learning_rate={learning_rate} must be a positive number.",
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
            wall_clock_s=self.wall_clock_s,
            previous_direction=self.previous_direction,
            **{f"counter_{name}": variable for name, variable in self.counters.items()},
        )

    def _iteration_seeds(self, iteration: int):
        """(sample seed, inner-training seed) for one outer iteration, derived statelessly."""
        base = tf.random.experimental.stateless_fold_in(tf.constant([self.seed, 0], tf.int64), iteration)
        seeds = tf.random.experimental.stateless_split(base, 2)
        return seeds[0], seeds[1]

    # ------------------------------------------------------------------ reuse
    def _make_reuse_buffer(self) -> dict:
        """W slots of N samples (inputs, labels, latents, log q), as variables so checkpoints hold them."""
        example = self.simulator.sample_latents(1, seed=tf.constant([self.seed, 2]))
        slots, size = self.reuse_iterations, self.num_samples

        def slot_variable(shape, dtype, name):
            return tf.Variable(tf.zeros([slots, size, *shape], dtype), trainable=False, name=name)

        buffer = {
            "inputs": slot_variable(self.simulator.observation_shape, self.model.inputs[0].dtype, "reuse_inputs"),
            "labels": slot_variable(
                self.simulator.label_shape, tf.as_dtype(self.simulator.label_dtype), "reuse_labels"
            ),
            "log_q": slot_variable((), tf.float32, "reuse_log_q"),
            "count": tf.Variable(tf.zeros([slots], tf.int32), trainable=False, name="reuse_count"),
            "latents": tf.nest.map_structure(lambda t: slot_variable(t.shape[1:], t.dtype, "reuse_latents"), example),
        }
        if self.reuse_weighting == REUSE_MIXTURE:
            # The psi each slot's samples were drawn under, for the mixture density.
            buffer["psi"] = [
                tf.Variable(tf.zeros([slots, *v.shape], v.dtype), trainable=False, name="reuse_psi")
                for v in self.simulator.psi_variables
            ]
        return buffer

    def _with_reused_samples(self, inputs, labels, latents, iteration):
        """`D_t` = the kept samples of the previous W iterations (oldest first) + this iteration's.

        Also stores this iteration's samples in its slot (overwriting the oldest) and
        returns the self-normalised importance weights `p(c | psi_t) / q(c)`, scaled to
        mean 1, where q is the psi each sample was drawn under (the current one for the
        new samples). Compiled: as eager ops this bookkeeping cost more than a whole
        outer iteration of the toy problem.

        Returns:
          `(inputs, labels, latents, importance_weights)` of the combined set.
        """
        buffer = self.reuse_buffer
        slots, size = self.reuse_iterations, self.num_samples
        count = tf.shape(labels)[0]
        # Slot (iteration + k) % W holds iteration - W + k: reading in this order is oldest first.
        order = tf.math.floormod(tf.cast(iteration, tf.int32) + tf.range(slots), slots)
        kept = tf.reshape(tf.range(size)[None, :] < tf.gather(buffer["count"], order)[:, None], [-1])

        def old_and_new(variable, new):
            old = tf.gather(variable, order)
            old = tf.boolean_mask(tf.reshape(old, [slots * size, *old.shape[2:]]), kept)
            return tf.concat([old, tf.cast(new, variable.dtype)], axis=0)

        combined_inputs = old_and_new(buffer["inputs"], inputs)
        combined_labels = old_and_new(buffer["labels"], labels)
        combined_latents = tf.nest.map_structure(old_and_new, buffer["latents"], latents)
        # log p(c | psi_t) for every sample; for the new ones it is also their log q.
        log_p = tf.cast(self.simulator.log_prob(combined_latents), tf.float32)
        log_q_new = log_p[-count:]
        if self.reuse_weighting == REUSE_MIXTURE:
            combined_log_q = self._log_mixture_density(combined_latents, log_p, count, order)
        else:
            combined_log_q = old_and_new(buffer["log_q"], log_q_new)

        slot = tf.math.floormod(tf.cast(iteration, tf.int32), slots)

        def store(variable, value):
            padding = [[0, size - count]] + [[0, 0]] * (len(value.shape) - 1)
            variable[slot].assign(tf.pad(tf.cast(value, variable.dtype), padding))

        store(buffer["inputs"], inputs)
        store(buffer["labels"], labels)
        store(buffer["log_q"], log_q_new)
        tf.nest.map_structure(store, buffer["latents"], latents)
        buffer["count"][slot].assign(count)
        if self.reuse_weighting == REUSE_MIXTURE:
            for stored, variable in zip(buffer["psi"], self.simulator.psi_variables, strict=True):
                stored[slot].assign(variable)

        weights = tf.cast(tf.shape(log_p)[0], tf.float32) * tf.nn.softmax(log_p - combined_log_q)
        return combined_inputs, combined_labels, combined_latents, weights

    def _log_mixture_density(self, latents, log_p, count, order):
        """`log sum_k (n_k / n) p(c | psi_k)` over the W stored psi and the current one, for every latent.

        Each stored psi is assigned to the simulator's variables in turn, its `log_prob`
        taken, and the current psi restored, so any `Simulator` works unchanged. Inside
        the compiled function the assignments and reads run in program order.
        """
        buffer = self.reuse_buffer
        psi = self.simulator.psi_variables
        current = [tf.identity(v.read_value()) for v in psi]
        counts = tf.cast(tf.gather(buffer["count"], order), tf.float32)
        terms = []
        for k in range(self.reuse_iterations):
            slot = order[k]
            for stored, variable in zip(buffer["psi"], psi, strict=True):
                variable.assign(stored[slot])
            term = tf.math.log(tf.maximum(counts[k], 1.0)) + tf.cast(self.simulator.log_prob(latents), tf.float32)
            # An empty slot (the first W iterations; its stored psi is all zeros) contributes nothing.
            terms.append(tf.where(counts[k] > 0, term, -np.inf))
        for variable, value in zip(psi, current, strict=True):
            variable.assign(value)
        terms.append(tf.math.log(tf.cast(count, tf.float32)) + log_p)
        total = tf.reduce_sum(counts) + tf.cast(count, tf.float32)
        return tf.reduce_logsumexp(tf.stack(terms, axis=0), axis=0) - tf.math.log(total)

    # ------------------------------------------------------------------ steps
    def _trace_for_any_size(self, inputs, labels, latents, num_steps, seed, importance_weights) -> None:
        """Traces inner training and the hypergradient once for a `D_t` of any size.

        With reuse, `D_t` grows from N to (W + 1) N samples over the first W outer
        iterations. `reduce_retracing` alone would trace for the first size and again,
        shape-relaxed, at the second: on the GMM toy that second tracing cost ~2 s, half
        of a whole comparison run. Tracing with an unknown leading dimension from the
        start makes the one trace serve every size.
        """

        def any_size(structure):
            return tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), structure)

        self._inner_train_fn.get_concrete_function(
            any_size(inputs),
            any_size(labels),
            tf.TensorSpec.from_tensor(num_steps),
            tf.TensorSpec.from_tensor(seed),
            any_size(importance_weights),
        )
        self._hypergradient_fn.get_concrete_function(
            any_size(inputs), any_size(labels), any_size(latents), any_size(importance_weights)
        )
        self._traced_for_any_size = True

    def _inner_train(self, inputs, labels, num_steps, seed, example_weights=None):
        """`num_steps` minibatch optimizer steps on `D_t`, warm-started from the current theta.

        `example_weights` (importance weights of reused samples) weight each example's
        loss, so theta is trained towards the current psi's data distribution.
        """
        num_examples = tf.shape(inputs)[0]
        variables = self.model.trainable_variables

        def one_step(step, loss, nonfinite):
            indices = pipeline.minibatch_indices(seed, step, self.inner_batch_size, num_examples)
            # The minibatch is split over the strategy's replicas (one device: a plain gradient).
            batch = [tf.gather(inputs, indices), tf.gather(labels, indices)]
            if example_weights is not None:
                batch.append(tf.gather(example_weights, indices))
            loss, gradients = self.objective.mean_value_and_gradient(
                self.objective.train_loss, self.objective.current_weights(), *batch
            )
            finite = tree_math.all_finite(gradients)
            # A non-finite minibatch gradient is replaced by zeros, so theta never becomes non-finite.
            gradients = [tf.where(finite, g, tf.zeros_like(g)) for g in gradients]
            self.inner_optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return step + 1, tf.cast(loss, tf.float32), nonfinite + tf.cast(tf.logical_not(finite), tf.int64)

        # An explicit loop rather than `for step in tf.range(...)`, so no AutoGraph is needed (tracing.py).
        _, loss, nonfinite = tf.while_loop(
            lambda step, loss, nonfinite: step < num_steps,
            one_step,
            (tf.constant(0, num_steps.dtype), tf.constant(np.nan, tf.float32), tf.constant(0, tf.int64)),
        )
        return loss, nonfinite

    def _hypergradient(self, inputs, labels, latents, importance_weights=None):
        """Steps 3-6 without the update: returns the estimate and whether it is finite."""
        initial_guess = [tf.convert_to_tensor(v) for v in self.previous_direction] if self.warm_start_solver else None
        result = estimator.estimate_hypergradient(
            self.objective,
            self.simulator,
            self.objective.current_weights(),
            inputs,
            labels,
            latents,
            self._validation[0],
            self._validation[1],
            solver=self.solver,
            curvature=self.curvature,
            damping=self.damping,
            baseline=self.baseline,
            initial_guess=initial_guess,
            importance_weights=importance_weights,
        )
        # A NaN validation gradient can hide behind a finite z (CG stops at once on a NaN residual), so it is
        # checked on its own.
        finite = tf.reduce_all(
            [
                tree_math.all_finite(result.gradients),
                tree_math.all_finite(result.direction),
                tf.math.is_finite(result.diagnostics["validation_gradient_norm"]),
                tf.math.is_finite(result.diagnostics["validation_loss"]),
            ]
        )
        return result, finite

    def _evaluate(self, inputs, labels):
        outputs = self.model(inputs, training=False)
        loss = tf.reduce_mean(losses.per_example_loss(self.loss, outputs, labels))
        if self.loss == losses.SOFTMAX_CROSS_ENTROPY:
            return loss, losses.accuracy(self.loss, outputs, labels)
        return loss, tf.constant(np.nan, tf.float32)

    def evaluate(self, split: str = "validation") -> dict:
        """Loss and accuracy of the current model on the real `"validation"` or `"test"` split."""
        inputs, labels = self._validation if split == "validation" else self._test
        loss, accuracy = self._evaluate_fn(inputs, labels)
        return {"loss": float(loss), "accuracy": float(accuracy)}

    def step(self) -> dict:
        """Runs one outer iteration and returns its metrics (plain Python numbers)."""
        start = time.perf_counter()
        iteration = int(self.iteration.numpy())
        sample_seed, inner_seed = self._iteration_seeds(iteration)

        latents = self.simulator.sample_latents(self.num_samples, seed=sample_seed)
        rendered = pipeline.render_latents(self.simulator, latents, render_timeout_s=self.render_timeout_s)
        inputs, labels, latents, num_dropped = pipeline.keep_valid(rendered, latents)
        inputs = tf.cast(inputs, self.model.inputs[0].dtype)
        num_kept = int(inputs.shape[0])
        if num_dropped > self.max_failure_rate * self.num_samples or num_kept < 2:
            # Raised before any state changes: the trainer still holds the last good state.
            raise SimulatorFailureError(
                f"{num_dropped} of {self.num_samples} renders failed at outer iteration {iteration + 1}, above "
                f"AutoSimulateTrainer.max_failure_rate={self.max_failure_rate}."
            )
        importance_weights = None
        if self.reuse_buffer is not None:
            inputs, labels, latents, importance_weights = self._with_reused_samples_fn(
                inputs, labels, latents, tf.constant(iteration, tf.int64)
            )
        render_done = time.perf_counter()

        num_steps = self.num_initial_inner_steps if iteration == 0 else self.num_inner_steps
        num_steps_tensor = tf.constant(num_steps)
        if self.reuse_buffer is not None and not self._traced_for_any_size:
            self._trace_for_any_size(inputs, labels, latents, num_steps_tensor, inner_seed, importance_weights)
        inner_loss, nonfinite_inner = self._inner_train_fn(
            inputs, labels, num_steps_tensor, inner_seed, importance_weights
        )
        inner_done = time.perf_counter()

        result, finite = self._hypergradient_fn(inputs, labels, latents, importance_weights)
        updated = bool(finite) and self._update_psi(result.gradients)
        if updated:
            for variable, value in zip(self.previous_direction, result.direction, strict=True):
                variable.assign(value)
        else:
            logging.warning("Non-finite hypergradient or psi at outer iteration %d: psi update skipped.", iteration + 1)
            self.counters["skipped_updates"].assign_add(1)
        hypergradient_done = time.perf_counter()

        self.counters["simulated_samples"].assign_add(self.num_samples)
        self.counters["dropped_samples"].assign_add(num_dropped)
        self.counters["nonfinite_inner_gradients"].assign_add(int(nonfinite_inner))
        self.counters["inner_steps"].assign_add(num_steps)
        self.counters["hvp_count"].assign_add(int(result.diagnostics["hvp_count"]))
        self.counters["objective_evaluations"].assign_add(1)
        self.iteration.assign_add(1)
        # The accuracy that decides whether the target is reached is part of the timed work, as
        # the baselines' validation scoring is part of theirs.
        validation = self.evaluate("validation")
        elapsed = time.perf_counter() - start
        self.wall_clock_s.assign_add(elapsed)

        metrics = {name: float(value) for name, value in result.diagnostics.items()}
        if importance_weights is not None:
            # Effective sample size of the weighted set, as a fraction of its size (1 = no degeneracy).
            metrics["reuse_effective_sample_fraction"] = float(
                tf.square(tf.reduce_sum(importance_weights))
                / (tf.reduce_sum(tf.square(importance_weights)) * tf.cast(tf.size(importance_weights), tf.float32))
            )
        metrics.update(
            iteration=iteration + 1,
            inner_loss=float(inner_loss),
            val_loss=validation["loss"],
            val_accuracy=validation["accuracy"],
            num_dropped=num_dropped,
            update_skipped=not updated,
            render_s=render_done - start,
            inner_s=inner_done - render_done,
            hypergradient_s=hypergradient_done - inner_done,
            iteration_s=elapsed,
        )
        metrics.update({name: int(variable.numpy()) for name, variable in self.counters.items()})
        metrics["wall_clock_s"] = float(self.wall_clock_s.numpy())
        return metrics

    def _update_psi(self, gradients) -> bool:
        """Applies the outer step; undoes it if psi became non-finite. Returns whether it stuck."""
        return bool(self._update_psi_fn(gradients))

    def _apply_psi_update(self, gradients):
        """Compiled body of `_update_psi`: an eager Keras optimizer step plus the finiteness
        checks cost ~6 ms, which on the GMM toy was a sixth of an outer iteration.

        The optimizer's moments keep the step even when psi is restored, as before.
        """
        psi = self.simulator.psi_variables
        previous = [tf.identity(variable) for variable in psi]
        self.outer_optimizer.apply_gradients(zip(gradients, psi, strict=True))
        constrained = [self.simulator.parameter(name) for name in self.simulator.parameter_names]
        finite = tf.logical_and(tree_math.all_finite(list(psi)), tree_math.all_finite(constrained))
        for variable, value in zip(psi, previous, strict=True):
            variable.assign(tf.where(finite, variable, value))
        return finite

    def problem(self) -> dict:
        """The problem definition shared with methods that train from scratch (baselines, final model)."""
        return {
            "simulator": self.simulator,
            "real_data": self.real_data,
            "model_fn": self.model_fn,
            "num_outputs": self.num_outputs,
            "loss": self.loss,
        }

    def constrained_psi(self) -> dict:
        """psi as constrained values, JSON-ready lists, by name."""
        return self.simulator.constrained_parameters_as_lists()
