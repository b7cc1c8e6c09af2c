"""Categorical pools: psi is a distribution over K fixed pools of labelled data.

Some pools are clean samples of the target task, others are useless (label noise,
shifted inputs); the known optimum puts all mass on the clean pools. A latent is
`(pool, index)`, rendering looks the example up.
"""

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.data.real import sample_xor_mixture
from autosimulate_tf.errors import check
from autosimulate_tf.simulators.base import Simulator
from autosimulate_tf.simulators.domains import constrained_value_problem, show

tfb = tfp.bijectors
tfd = tfp.distributions

POOL_KINDS = ("clean", "label_noise", "shifted", "flipped")


@gin.configurable
def xor_pools(
    kinds=("clean", "label_noise", "shifted", "clean", "flipped"),
    pool_size: int = 1000,
    label_noise: float = 0.5,
    shift=(2.0, 0.0),
    seed: int = 7,
):
    """Builds pools over the XOR mixture task.

    Args:
      kinds: one entry per pool: `"clean"` (the real distribution), `"label_noise"`
        (each label replaced by a uniformly random one with probability
        `label_noise`), `"shifted"` (inputs translated by `shift`), `"flipped"`
        (all labels swapped).
      pool_size: examples per pool.
      label_noise: replacement probability for `"label_noise"` pools.
      shift: translation for `"shifted"` pools.
      seed: numpy seed.

    Returns:
      `(names, inputs [K, pool_size, 2], labels [K, pool_size])`.
    """
    rng = np.random.default_rng(seed)
    names, inputs, labels = [], [], []
    for index, kind in enumerate(kinds):
        check(kind in POOL_KINDS, f"xor_pools.kinds[{index}]={kind!r} is not one of {POOL_KINDS}.")
        x, y = sample_xor_mixture(pool_size, rng)
        if kind == "label_noise":
            replace = rng.random(pool_size) < label_noise
            y = np.where(replace, rng.integers(0, 2, pool_size), y).astype(np.int32)
        elif kind == "shifted":
            x = (x + np.asarray(shift, np.float32)).astype(np.float32)
        elif kind == "flipped":
            y = (1 - y).astype(np.int32)
        names.append(f"{index}_{kind}")
        inputs.append(x)
        labels.append(y)
    return names, np.stack(inputs), np.stack(labels)


@gin.configurable
class CategoricalPoolsSimulator(Simulator):
    """Chooses a pool with probabilities psi, then an example uniformly within it."""

    observation_shape = (2,)
    num_classes = 2
    render_with_tf_ops = True

    def __init__(self, pools=None, initial_probabilities=None, name: str = "categorical_pools"):
        """Builds the simulator over `pools`, psi starting at `initial_probabilities`.

        Args:
          pools: `(names, inputs [K, M, ...], labels [K, M])`; `xor_pools()` when None.
          initial_probabilities: initial pool probabilities, K numbers > 0 summing to 1
            (uniform when None).
          name: module name.

        Raises:
          ConfigError: when `initial_probabilities` is not a probability vector over the K pools.
        """
        super().__init__(name=name)
        names, inputs, labels = pools if pools is not None else xor_pools()
        self.pool_names = list(names)
        self.num_pools, self.pool_size = int(inputs.shape[0]), int(inputs.shape[1])
        self.observation_shape = tuple(inputs.shape[2:])
        self._inputs = tf.constant(inputs, tf.float32)
        self._labels = tf.constant(labels, tf.int32)
        if initial_probabilities is None:
            initial_probabilities = np.full([self.num_pools], 1.0 / self.num_pools, np.float32)
        # SoftmaxCentered keeps psi on the simplex whatever the optimizer does.
        bijector = tfb.SoftmaxCentered()
        setting = f"CategoricalPoolsSimulator.initial_probabilities={show(initial_probabilities)}"
        check(
            np.shape(initial_probabilities) == (self.num_pools,),
            f"{setting} must be {self.num_pools} probabilities, one per pool.",
        )
        problem = constrained_value_problem(initial_probabilities, bijector)
        check(problem is None, f"{setting} is not allowed: {problem}.")
        self.add_parameter("pool_probabilities", initial_probabilities, bijector=bijector, bounds=(0.0, 1.0))

    def latent_distribution(self):
        """`pool ~ Categorical(psi)`, `index ~ Uniform{0..M-1}`."""
        return tfd.JointDistributionNamed(
            {
                "pool": tfd.Categorical(probs=self.parameter("pool_probabilities")),
                "index": tfd.Categorical(logits=tf.zeros([self.pool_size])),
            }
        )

    def render(self, latent):
        """Looks up example `index` of pool `pool`."""
        position = tf.stack([latent["pool"], latent["index"]])
        return tf.gather_nd(self._inputs, position), tf.gather_nd(self._labels, position)
