"""The outer loop (`AutoSimulateTrainer`) and the experiment entry point (`train_autosimulate`)."""

from autosimulate_tf.train.loop import final_results, train_autosimulate
from autosimulate_tf.train.optimizers import DecayingEpsilonAdam
from autosimulate_tf.train.trainer import AutoSimulateTrainer

__all__ = ["AutoSimulateTrainer", "DecayingEpsilonAdam", "final_results", "train_autosimulate"]
