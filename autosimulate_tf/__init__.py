"""AutoSimulate in TensorFlow 2: learning the parameters of a non-differentiable simulator.

Layout:
  simulators/  latent distribution p(c | psi) + black-box renderer
  data/        tf.data render pipeline and real datasets
  models/      Keras task-model factories and per-example losses
  hypergrad/   curvature products, solvers, influence weights, surrogate loss
  train/       the outer loop and the experiment entry point
  baselines/   methods AutoSimulate is compared with
"""

__version__ = "0.1.0"
