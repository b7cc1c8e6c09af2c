"""Shared pytest setup: quiet TF logs, absl flags parsed, gin cleared around every test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin
import pytest
from absl import flags

# absl flags must count as parsed before library code reads FLAGS under pytest.
if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


@pytest.fixture(autouse=True)
def clear_gin_config():
    """Each test starts from an empty gin config and leaves none behind."""
    gin.clear_config()
    yield
    gin.clear_config()
