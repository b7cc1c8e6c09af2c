"""The outer loop (`AutoSimulateTrainer`), the run entry point (`train_autosimulate`) and the hand-off."""

from autosimulate_tf.train.hand_off import HandOff
from autosimulate_tf.train.loop import final_results, train_autosimulate
from autosimulate_tf.train.optimizers import DecayingEpsilonAdam
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator
from autosimulate_tf.train.trainer import AutoSimulateTrainer

__all__ = [
    "AutoSimulateTrainer",
    "DecayingEpsilonAdam",
    "HandOff",
    "ScratchTrainingEvaluator",
    "final_results",
    "train_autosimulate",
]
