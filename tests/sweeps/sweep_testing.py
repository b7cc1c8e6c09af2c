"""Shared by the sweep tests: tiny budgets, the sweep binary, reading back what a sweep wrote."""

import csv
import json
import os
import subprocess
import sys

import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(REPO, "experiments", "sweep.py")

# A train trial of a few seconds on the toy (most of it TF start-up).
TINY_TRAINING = (
    "train_autosimulate.num_outer_iterations = 2",
    "AutoSimulateTrainer.num_initial_inner_steps = 10",
    "NUM_INNER_STEPS = 5",
)


def environment() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO, PYTHONUNBUFFERED="1")


def sweep_command(*flags) -> list[str]:
    return [sys.executable, BINARY, *flags]


def run_sweep_binary(*flags, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(
        sweep_command(*flags), capture_output=True, text=True, timeout=timeout, env=environment(), cwd=REPO
    )


def read_rows(root_dir) -> list[dict]:
    with open(os.path.join(root_dir, "sweep.csv"), newline="") as f:
        return list(csv.DictReader(f))


def read_trial(folder) -> dict:
    with open(os.path.join(folder, "trial.json")) as f:
        return json.load(f)


def hparams_plugin_data(event_files) -> list:
    """Every HParams plugin record (`HParamsPluginData`) in the given TensorBoard event files."""
    found = []
    for path in event_files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    found.append(plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content))
    return found
