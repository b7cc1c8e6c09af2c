"""Locating and parsing the shipped gin configs."""

import contextlib
import logging
import os
import sys
import textwrap

import gin

# Importing these registers every configurable that shipped gin files name.
from autosimulate_tf import baselines, comparison, data, hypergrad, models, problem, simulators, train  # noqa: F401
from autosimulate_tf.errors import ConfigError

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def gin_dir() -> str:
    """Folder holding the shipped gin files.

    Installed wheels carry them as package data in `autosimulate_tf/gin/`; a source
    checkout (or editable install) keeps them in the top-level `gin/` folder.
    """
    for candidate in (os.path.join(_PACKAGE_DIR, "gin"), os.path.join(os.path.dirname(_PACKAGE_DIR), "gin")):
        if os.path.isdir(candidate) and any(name.endswith(".gin") for name in os.listdir(candidate)):
            return candidate
    raise FileNotFoundError(f"No shipped gin folder found next to {_PACKAGE_DIR}.")


def shipped_gin_files() -> list[str]:
    """Absolute paths of every shipped gin file, sorted."""
    folder = gin_dir()
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".gin"))


def parse_gin(gin_files=(), gin_bindings=(), search_paths=()) -> None:
    """Parses gin files and bindings; unknown names are errors (`skip_unknown=False`).

    Args:
      gin_files: file names or paths; bare names are looked up in `search_paths`
        and then in the shipped gin folder.
      gin_bindings: extra bindings, applied after the files.
      search_paths: folders searched for gin files and their includes.

    Raises:
      ValueError / FileNotFoundError / KeyError from gin, naming the bad binding or file.
    """
    search_paths = [*list(search_paths), gin_dir()]
    for path in search_paths:
        gin.add_config_file_search_path(path)
    resolved = [resolve_gin_file(name, search_paths) for name in gin_files]
    with _quiet_include_lookups():
        gin.parse_config_files_and_bindings(resolved, list(gin_bindings), skip_unknown=False)


def _is_include_lookup_noise(record: logging.LogRecord) -> bool:
    # gin tries an `include` relative to the working directory first and logs an ERROR before it
    # finds the file on the search path; a file that is really missing still raises.
    return not (record.pathname.endswith("resource_reader.py") and record.getMessage().startswith("Path not found"))


@contextlib.contextmanager
def _quiet_include_lookups():
    root = logging.getLogger()
    root.addFilter(_is_include_lookup_noise)
    try:
        yield
    finally:
        root.removeFilter(_is_include_lookup_noise)


def resolve_gin_file(name: str, search_paths=()) -> str:
    """Returns the path of gin file `name`: as given if it exists, else found in `search_paths`.

    Raises:
      FileNotFoundError: naming the file and every folder searched.
    """
    if os.path.isfile(name):
        return name
    folders = list(search_paths) or [gin_dir()]
    for folder in folders:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"gin file {name!r} not found in the working directory or in {folders}.")


# What gin raises while parsing files and bindings: unknown configurables or parameters
# (ValueError), syntax errors (SyntaxError), missing files or imports.
GIN_PARSE_ERRORS = (ValueError, KeyError, SyntaxError, FileNotFoundError, ImportError)


def is_config_error(error: BaseException) -> bool:
    """True for a bad setting: a `ConfigError`, or gin's missing-required-binding error.

    Anything else raised during a run is a runtime failure and keeps its traceback.
    """
    if isinstance(error, ConfigError):
        return True
    return isinstance(error, RuntimeError) and "Required bindings" in str(error) and "not provided" in str(error)


def exit_for_config_error(error: BaseException, what: str = "Configuration error") -> None:
    """Prints `error` as one paragraph on stderr and exits with status 2 (no traceback)."""
    message = " ".join(str(error).split())
    print(textwrap.fill(f"{what}: {message}", width=100), file=sys.stderr)
    sys.exit(2)


def parse_gin_or_exit(gin_files=(), gin_bindings=(), search_paths=()) -> None:
    """`parse_gin`, exiting with status 2 and a one-paragraph message when gin rejects the config."""
    try:
        parse_gin(gin_files, gin_bindings, search_paths)
    except GIN_PARSE_ERRORS as error:
        exit_for_config_error(error, "Bad gin configuration")
