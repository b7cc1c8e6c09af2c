"""Reusing the renders of the previous W outer iterations, importance-weighted to the current psi.

Each outer iteration renders N new samples; with reuse, the inner training and the
hypergradient see those plus the kept samples of the previous W iterations, up to
(W + 1) N. A sample drawn under an older psi gets the self-normalised importance weight
`p(c | psi_t) / q(c)`, so the weighted set still estimates expectations under the
current psi. Two choices of q:

  "per_sample": each sample's own psi, `q(c) = p(c | psi_then)`;
  "mixture":    the mixture of the psi of all W + 1 iterations in the set, weighted by
                their sample counts, `q(c) = sum_k (n_k / n) p(c | psi_k)` (the balance
                heuristic of multiple importance sampling, Veach and Guibas 1995): never
                larger than n / n_t, so one old sample cannot dominate; it costs W + 1
                `log_prob` evaluations of the set.

The buffer's slots are variables, so checkpoints hold them and a restored run replays
exactly what an uninterrupted run would do.
"""

import numpy as np
import tensorflow as tf

from autosimulate_tf.errors import check

PER_SAMPLE = "per_sample"
MIXTURE = "mixture"
WEIGHTINGS = (PER_SAMPLE, MIXTURE)


class ReuseBuffer(tf.Module):
    """W slots of N samples (inputs, labels, latents, log q), oldest overwritten first."""

    # The simulator is the trainer's (checkpointed there); the buffer only reads it.
    _TF_MODULE_IGNORED_PROPERTIES = frozenset(tf.Module._TF_MODULE_IGNORED_PROPERTIES | {"_simulator"})

    def __init__(self, simulator, num_iterations: int, num_samples: int, input_dtype, weighting: str = PER_SAMPLE):
        """Args:
        simulator: the `Simulator` (its latent structure, output spec and psi).
        num_iterations: W >= 1, iterations whose renders are kept.
        num_samples: N, samples rendered per iteration (the size of one slot).
        input_dtype: dtype of the model inputs.
        weighting: `"per_sample"` or `"mixture"` (see the module docstring).
        """
        super().__init__(name="reuse_buffer")
        check(num_iterations >= 1, f"AutoSimulateTrainer.reuse_iterations={num_iterations} must be >= 1 here.")
        check(
            weighting in WEIGHTINGS,
            f"AutoSimulateTrainer.reuse_weighting={weighting!r} is not one of {WEIGHTINGS}.",
        )
        self._simulator = simulator
        self.num_iterations = int(num_iterations)
        self.num_samples = int(num_samples)
        self.weighting = weighting
        example = simulator.sample_latents(1, seed=tf.constant([0, 2]))
        self.inputs = self._slots(simulator.observation_shape, input_dtype, "reuse_inputs")
        self.labels = self._slots(simulator.label_shape, tf.as_dtype(simulator.label_dtype), "reuse_labels")
        self.log_q = self._slots((), tf.float32, "reuse_log_q")
        self.count = tf.Variable(tf.zeros([self.num_iterations], tf.int32), trainable=False, name="reuse_count")
        self.latents = tf.nest.map_structure(lambda t: self._slots(t.shape[1:], t.dtype, "reuse_latents"), example)
        # The psi each slot's samples were drawn under, for the mixture density.
        self.psi = (
            [
                tf.Variable(tf.zeros([self.num_iterations, *v.shape], v.dtype), trainable=False, name="reuse_psi")
                for v in simulator.psi_variables
            ]
            if weighting == MIXTURE
            else []
        )

    def _slots(self, shape, dtype, name) -> tf.Variable:
        return tf.Variable(tf.zeros([self.num_iterations, self.num_samples, *shape], dtype), trainable=False, name=name)

    def combine(self, inputs, labels, latents, iteration):
        """`D_t` = the kept samples of the previous W iterations (oldest first) + this iteration's.

        Also stores this iteration's samples in its slot (overwriting the oldest).
        Meant to run compiled: as eager ops this bookkeeping cost more than a whole outer
        iteration of the GMM toy.

        Returns:
          `(inputs, labels, latents, importance_weights)` of the combined set; the
          weights are self-normalised `p(c | psi_t) / q(c)`, scaled to mean 1.
        """
        count = tf.shape(labels)[0]
        # Slot (iteration + k) % W holds iteration - W + k: reading in this order is oldest first.
        order = tf.math.floormod(tf.cast(iteration, tf.int32) + tf.range(self.num_iterations), self.num_iterations)
        kept = tf.reshape(tf.range(self.num_samples)[None, :] < tf.gather(self.count, order)[:, None], [-1])

        def old_and_new(variable, new):
            old = tf.gather(variable, order)
            old = tf.boolean_mask(tf.reshape(old, [-1, *old.shape[2:]]), kept)
            return tf.concat([old, tf.cast(new, variable.dtype)], axis=0)

        combined_inputs = old_and_new(self.inputs, inputs)
        combined_labels = old_and_new(self.labels, labels)
        combined_latents = tf.nest.map_structure(old_and_new, self.latents, latents)
        # log p(c | psi_t) for every sample; for the new ones it is also their log q.
        log_p = tf.cast(self._simulator.log_prob(combined_latents), tf.float32)
        log_q_new = log_p[-count:]
        if self.weighting == MIXTURE:
            combined_log_q = self._log_mixture_density(combined_latents, log_p, count, order)
        else:
            combined_log_q = old_and_new(self.log_q, log_q_new)
        self._store(
            tf.math.floormod(tf.cast(iteration, tf.int32), self.num_iterations), inputs, labels, latents, log_q_new
        )
        weights = tf.cast(tf.shape(log_p)[0], tf.float32) * tf.nn.softmax(log_p - combined_log_q)
        return combined_inputs, combined_labels, combined_latents, weights

    def _store(self, slot, inputs, labels, latents, log_q) -> None:
        """Writes one iteration's samples (zero-padded to N) and, for the mixture, its psi into `slot`."""
        count = tf.shape(labels)[0]

        def store(variable, value):
            padding = [[0, self.num_samples - count]] + [[0, 0]] * (len(value.shape) - 1)
            variable[slot].assign(tf.pad(tf.cast(value, variable.dtype), padding))

        store(self.inputs, inputs)
        store(self.labels, labels)
        store(self.log_q, log_q)
        tf.nest.map_structure(store, self.latents, latents)
        self.count[slot].assign(count)
        if self.weighting == MIXTURE:
            for stored, variable in zip(self.psi, self._simulator.psi_variables, strict=True):
                stored[slot].assign(variable)

    def _log_mixture_density(self, latents, log_p, count, order):
        """`log sum_k (n_k / n) p(c | psi_k)` over the W stored psi and the current one, for every latent.

        Each stored psi is put into the simulator temporarily (`Simulator.temporary_psi`),
        so any `Simulator` works unchanged; inside the compiled function the assignments
        and reads run in program order, and the current psi is restored exactly.
        """
        counts = tf.cast(tf.gather(self.count, order), tf.float32)
        terms = []
        for k in range(self.num_iterations):
            slot = order[k]
            with self._simulator.temporary_psi(unconstrained=[stored[slot] for stored in self.psi]):
                log_prob = tf.cast(self._simulator.log_prob(latents), tf.float32)
            term = tf.math.log(tf.maximum(counts[k], 1.0)) + log_prob
            # An empty slot (the first W iterations; its stored psi is all zeros) contributes nothing.
            terms.append(tf.where(counts[k] > 0, term, -np.inf))
        terms.append(tf.math.log(tf.cast(count, tf.float32)) + log_p)
        total = tf.reduce_sum(counts) + tf.cast(count, tf.float32)
        return tf.reduce_logsumexp(tf.stack(terms, axis=0), axis=0) - tf.math.log(total)


def effective_sample_fraction(importance_weights) -> float:
    """Effective sample size of a weighted set as a fraction of its size (1: no degeneracy)."""
    weights = tf.convert_to_tensor(importance_weights)
    size = tf.cast(tf.size(weights), tf.float32)
    return float(tf.square(tf.reduce_sum(weights)) / (tf.reduce_sum(tf.square(weights)) * size))


def trace_for_any_size(inner_train_fn, hypergradient_fn, generated, num_steps, seed) -> None:
    """Traces the trainer's inner training and hypergradient once for a `D_t` of any size.

    With reuse, `D_t` grows from N to (W + 1) N samples over the first W outer
    iterations. `reduce_retracing` alone would trace for the first size and again,
    shape-relaxed, at the second: on the GMM toy that second tracing cost ~2 s, half
    of a whole comparison run. Tracing with an unknown leading dimension from the
    start makes the one trace serve every size.

    Args:
      inner_train_fn: the compiled `(generated, num_steps, seed)` inner training.
      hypergradient_fn: the compiled `(generated)` hypergradient.
      generated: this iteration's `GeneratedData` (only its specs are used).
      num_steps: scalar tensor.
      seed: stateless seed tensor.
    """

    def any_size(structure):
        return tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), structure)

    specs = type(generated)(*(any_size(part) for part in generated))
    inner_train_fn.get_concrete_function(specs, tf.TensorSpec.from_tensor(num_steps), tf.TensorSpec.from_tensor(seed))
    hypergradient_fn.get_concrete_function(specs)
