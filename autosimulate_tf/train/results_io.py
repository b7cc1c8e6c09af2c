"""Writing a run's files so that a kill at any moment never leaves half a file."""

import json
import os

import gin
import tensorflow as tf


def write_json_atomically(path: str, value) -> None:
    """Writes JSON to a temporary file and renames it, so a kill never leaves half a file."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def read_json(path: str):
    """The JSON value in `path`, or None when the file does not exist."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_text_if_changed(path: str, text: str) -> bool:
    """Writes `text` to `path` (atomically) unless the file already holds it; returns whether it wrote."""
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            if f.read() == text:
                return False
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        f.write(text)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return True


def write_operative_config(root_dir: str, writer=None) -> None:
    """Writes gin's operative config (only what actually ran) to root_dir and TensorBoard."""
    config = gin.operative_config_str()
    write_text_if_changed(os.path.join(root_dir, "operative_config.gin"), config)
    if writer is not None:
        with writer.as_default():
            # Markdown code block keeps gin's layout readable in TensorBoard's text tab.
            tf.summary.text("gin/operative_config", "```\n" + config + "\n```", step=0)
