"""The benchmark scripts as importable modules for their tests (benchmarks/ is not a package)."""

import importlib
import os
import sys

import pytest

_BENCHMARKS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))


@pytest.fixture(scope="session")
def benchmark_module():
    """Returns a function of `name` that imports benchmarks/<name>.py once per process.

    Importing by name through `sys.path` (as the scripts import each other) gives each script one
    module object, so its absl flags are defined once however many tests use it.
    """
    if _BENCHMARKS not in sys.path:
        sys.path.insert(0, _BENCHMARKS)
    return importlib.import_module
