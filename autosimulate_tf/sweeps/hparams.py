"""TensorBoard HParams data for a sweep: compare trials in TensorBoard's HParams dashboard.

`<root_dir>/tensorboard/` holds the experiment config (every swept binding, the seed and
the status as hyperparameters; every numeric result as a metric) and one run per trial,
`<root_dir>/tensorboard/<trial>/`, with its hyperparameter values and its results as scalars
at step 0:

    tensorboard --logdir=<root_dir>/tensorboard

The folder is rewritten at the end of every sweep run, so a re-run shows each trial once.
Each trial's training curves stay in its own folder (`<trial>/train/`).
"""

import ast
import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

TENSORBOARD_DIR = "tensorboard"
_ROW_FIELDS = ("trial", "seed", "folder", "status", "return_code", "error")


def hparam_value(text):
    """A swept value's gin text as TensorBoard takes it: a number, bool or string literal, else the text."""
    if not isinstance(text, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, bool | int | float | str) else text


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metric_names(rows: list[dict], swept_names: list[str]) -> list[str]:
    """Every numeric result column, in first-seen order."""
    names = {}
    for row in rows:
        for key, value in row.items():
            if key not in _ROW_FIELDS and key not in swept_names and _is_number(value):
                names[key] = None
    return list(names)


def _domain(values):
    """A discrete domain when the values share one type (ints and floats count as floats), else none."""
    values = [value for value in values if value is not None]
    if values and all(_is_number(value) for value in values):
        return hp.Discrete(sorted({float(value) for value in values}))
    types = {type(value) for value in values}
    return hp.Discrete(sorted(set(values))) if len(types) == 1 and types <= {str, bool} else None


def _trial_hparams(row: dict, swept_names: list[str]) -> dict:
    values = {name: hparam_value(row.get(name)) for name in swept_names}
    # TensorBoard stores every number as a double; one type per hyperparameter keeps its domain discrete.
    values = {name: float(value) if _is_number(value) else value for name, value in values.items()}
    if row.get("seed") is not None:
        values["seed"] = float(row["seed"])
    values["status"] = row["status"]
    return {name: value for name, value in values.items() if value is not None}


def write_hparams(root_dir: str, rows: list[dict], swept_names: list[str]) -> str:
    """Writes the experiment config and one run per trial under `root_dir/tensorboard`; returns that folder."""
    log_dir = os.path.join(root_dir, TENSORBOARD_DIR)
    if tf.io.gfile.exists(log_dir):
        tf.io.gfile.rmtree(log_dir)
    metric_names = _metric_names(rows, swept_names)
    hparam_names = [*swept_names, *(["seed"] if any(row.get("seed") is not None for row in rows) else []), "status"]
    per_trial = [_trial_hparams(row, swept_names) for row in rows]
    domains = {name: _domain([values.get(name) for values in per_trial]) for name in hparam_names}
    with tf.summary.create_file_writer(log_dir).as_default():
        hp.hparams_config(
            hparams=[hp.HParam(name, domains[name]) for name in hparam_names],
            metrics=[hp.Metric(name) for name in metric_names],
        )
    for row, values in zip(rows, per_trial, strict=True):
        with tf.summary.create_file_writer(os.path.join(log_dir, row["trial"])).as_default():
            hp.hparams(values, trial_id=row["trial"])
            for name in metric_names:
                if _is_number(row.get(name)):
                    tf.summary.scalar(name, float(row[name]), step=0)
    return log_dir
