"""Data-parallel evaluation of the hypergradient's pieces under a `tf.distribute.Strategy`.

Every quantity the hypergradient needs is either a *mean over examples* (the
training and validation losses, their gradients, curvature-vector products) or
*per example* (the influence weights). Both split exactly across replicas: the
examples are cut into one contiguous shard per replica, each replica evaluates the
same function on its shard at the same weights, and the results are combined as

    mean over all = sum_r (n_r / n) * (mean over shard r)       `weighted_mean`
    per example   = concat_r (per example of shard r)           `concatenate`

Terms that do not depend on the examples (weight decay, damping) come out right in
`weighted_mean` because the shard weights `n_r / n` sum to one.

The weights themselves are passed in as tensors (the functions here never read
variables), so the same code runs with mirrored model variables under
`MirroredStrategy` / `MultiWorkerMirroredStrategy` and with plain variables on one
device. With one replica the function is called directly: no strategy overhead and
bit-identical results to code that never heard of sharding.
"""

import gin
import tensorflow as tf

# Strategies users select in gin, e.g.
#   AutoSimulateTrainer.strategy = @tf.distribute.MirroredStrategy()
#   tf.distribute.MirroredStrategy.devices = ["/gpu:0", "/gpu:1"]
for _strategy in (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy):
    gin.external_configurable(_strategy, module="tf.distribute")


def shard_bounds(num_examples, replica_id, num_replicas):
    """`[start, stop)` of replica `replica_id`'s contiguous shard of `num_examples` rows.

    Shards differ in size by at most one row, so uneven counts need no padding.
    """
    start = (num_examples * replica_id) // num_replicas
    stop = (num_examples * (replica_id + 1)) // num_replicas
    return start, stop


class Sharding:
    """Runs a function on per-replica shards of a batch and combines the results.

    Args:
      strategy: a `tf.distribute.Strategy`, or None for the current (by default
        the single-device) strategy.
    """

    def __init__(self, strategy: tf.distribute.Strategy | None = None):
        self.strategy = strategy if strategy is not None else tf.distribute.get_strategy()

    @property
    def num_replicas(self) -> int:
        """Replicas the examples are split over."""
        return int(self.strategy.num_replicas_in_sync)

    def scope(self):
        """The strategy's variable-creation scope (model and optimizer variables go here)."""
        return self.strategy.scope()

    def _shards(self, tensors):
        """Per-replica values holding each replica's contiguous shard of `tensors`."""
        tensors = [tf.convert_to_tensor(t) for t in tensors]
        num_examples = tf.shape(tensors[0])[0]
        num_replicas = self.num_replicas
        tf.debugging.assert_greater_equal(
            num_examples,
            num_replicas,
            message=f"Sharding needs at least one example per replica ({num_replicas} replicas).",
        )

        def shard_of_replica(context):
            start, stop = shard_bounds(num_examples, context.replica_id_in_sync_group, num_replicas)
            return tuple(t[start:stop] for t in tensors), stop - start

        return self.strategy.experimental_distribute_values_from_function(shard_of_replica), num_examples

    def weighted_mean(self, function, tensors):
        """`sum_r (n_r / n) function(*shard_r)`: a per-shard mean combined into the mean over all rows.

        Args:
          function: maps per-shard tensors (same order as `tensors`, first axis =
            examples) to a nest of tensors that are means over the shard's examples
            (plus terms that do not depend on the examples).
          tensors: list of tensors sharing the first (example) axis.

        Returns:
          The nest `function` returns, for all rows at once.
        """
        if self.num_replicas == 1:
            return function(*tensors)
        shards, num_examples = self._shards(tensors)

        def weighted(shard_and_count):
            shard, count = shard_and_count
            values = function(*shard)
            # The shard weight in each value's own dtype, so float64 models stay float64-exact.
            return tf.nest.map_structure(
                lambda v: v * (tf.cast(count, v.dtype) / tf.cast(num_examples, v.dtype)), values
            )

        per_replica = self.strategy.run(weighted, args=(shards,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def concatenate(self, function, tensors):
        """`concat_r function(*shard_r)` along the first axis: per-example results in example order.

        Args:
          function: maps per-shard tensors to one tensor with a leading example axis.
          tensors: list of tensors sharing the first (example) axis.

        Returns:
          The per-example tensor for all rows, in the original order.
        """
        if self.num_replicas == 1:
            return function(*tensors)
        shards, _ = self._shards(tensors)
        per_replica = self.strategy.run(lambda shard_and_count: function(*shard_and_count[0]), args=(shards,))
        # `gather` (not the local results) so multi-worker strategies collect every worker's shards.
        return self.strategy.gather(per_replica, axis=0)
