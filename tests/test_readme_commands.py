"""Every command in the README's bash blocks runs, at a tiny budget, and does what it says.

Each command is run as printed, in a child process from the repository root, with only
budget-shrinking flags appended (`TINY_FLAGS`); a README command this file does not know
fails `test_every_readme_command_is_run_here`, so a new command cannot go untested.
"""

import json
import os
import shlex
import subprocess
import sys

import pytest
from readme_blocks import bash_commands

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
# The plug-in example's walk-through; tests/examples/test_examples.py runs its commands.
EXAMPLES_README = os.path.join(REPO, "examples", "README.md")

_TRAIN_TINY = [
    "train_autosimulate.num_outer_iterations = 2",
    "AutoSimulateTrainer.num_initial_inner_steps = 5",
    "AutoSimulateTrainer.num_inner_steps = 2",
    "AutoSimulateTrainer.num_samples = 40",
    "HandOff.final_training = False",
    "HandOff.real_data_reference = False",
    "HandOff.psi_selection_candidates = 0",
]
_COMPARE_TINY = [
    "run_comparison.seeds = (0,)",
    "run_method.max_samples = 200",
    "run_method.max_outer_iterations = 2",
    "run_method.stop_at_target = False",
    "ScratchTrainingEvaluator.num_samples = 50",
    "ScratchTrainingEvaluator.num_steps = 5",
    "AutoSimulateTrainer.num_samples = 40",
    "AutoSimulateTrainer.num_initial_inner_steps = 5",
    "AutoSimulateTrainer.num_inner_steps = 2",
    "LearningToSimulate.num_policy_samples = 2",
    "HandOff.final_training = False",
    "HandOff.real_data_reference = False",
]


def _bindings(lines):
    return [f"--gin_bindings={line}" for line in lines]


# The start of each README command (those of the plug-in example aside) -> (flags appended to shrink its budget, what it must write
# into the --root_dir it names).
TINY_FLAGS = {
    ".venv/bin/autosimulate-train --gin_file=toy_gmm.gin": (_bindings(_TRAIN_TINY), "results.json"),
    ".venv/bin/autosimulate-train --gin_file=pools.gin": (_bindings(_TRAIN_TINY), "results.json"),
    ".venv/bin/python experiments/compare.py --gin_file=compare_gmm.gin": (
        _bindings(_COMPARE_TINY),
        "comparison.json",
    ),
    ".venv/bin/autosimulate-sweep --root_dir=/tmp/sweep_toy --gin_file=toy_gmm.gin": (
        ["--seeds=0", "--gin_bindings=train_autosimulate.num_outer_iterations = 1", "--parallel=2"],
        "sweep.csv",
    ),
    ".venv/bin/python benchmarks/sim_to_real.py --benchmark=scenes": (
        [
            "--seeds=0",
            "--variants=autosimulate",
            *_bindings(_TRAIN_TINY),
            "--gin_bindings=HandOff.final_training = True",
            "--gin_bindings=final/ScratchTrainingEvaluator.num_samples = 30",
            "--gin_bindings=final/ScratchTrainingEvaluator.num_steps = 2",
            "--gin_bindings=AutoSimulateTrainer.num_samples = 16",
            "--gin_bindings=scene_target_data.num_validation = 30",
            "--gin_bindings=scene_target_data.num_test = 30",
            "--gin_bindings=HandOff.psi_average_fraction = 0.0",
        ],
        "summary.json",
    ),
}
# Run only with `pytest -m slow` (each takes 1-4 minutes on 2 cores); what they run is also
# exercised in-process by the default suite: every shipped gin file (tests/train/test_training.py),
# every compare file (tests/comparison/test_compare.py), sweeps (tests/sweeps/) and the
# scenes configs.
SLOW_COMMANDS = {
    ".venv/bin/autosimulate-sweep --root_dir=/tmp/sweep_toy --gin_file=toy_gmm.gin",
    ".venv/bin/python benchmarks/sim_to_real.py --benchmark=scenes",
    ".venv/bin/python experiments/compare.py --gin_file=compare_gmm.gin",
    ".venv/bin/autosimulate-train --gin_file=pools.gin",
}
# Commands run elsewhere: `make test` is what CI runs; `make demo` is checked to be
# `autosimulate-train` with its embedded default, which the toy_gmm command above runs.
MAKE_TARGETS = {"make demo": "autosimulate-train", "make test": "pytest"}


def readme_commands(path: str = README) -> list[str]:
    """Every command line of a README's ```bash blocks (`readme_blocks.bash_commands`)."""
    with open(path) as f:
        return bash_commands(f.read())


def _run_by_the_example_tests(command: str) -> bool:
    return command in readme_commands(EXAMPLES_README)


def _known(command: str):
    if _run_by_the_example_tests(command):
        return "tests/examples"
    matches = [prefix for prefix in (*TINY_FLAGS, *MAKE_TARGETS) if command.startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


def test_every_readme_command_is_run_here():
    commands = readme_commands()
    assert len(commands) >= 8, commands
    unknown = [command for command in commands if _known(command) is None]
    assert not unknown, f"README commands this test does not run: {unknown}"


@pytest.mark.parametrize("target", sorted(MAKE_TARGETS))
def test_make_targets_run_what_the_readme_says(target):
    dry_run = subprocess.run(
        ["make", "-n", *target.split()[1:]], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert MAKE_TARGETS[target] in dry_run


def _root_dir(arguments: list[str]) -> str:
    (root_dir,) = [a.split("=", 1)[1] for a in arguments if a.startswith("--root_dir=")]
    return root_dir


@pytest.mark.parametrize(
    "prefix",
    [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_COMMANDS else p for p in sorted(TINY_FLAGS)],
)
def test_readme_command_runs(prefix, tmp_path):
    (command,) = [c for c in readme_commands() if c.startswith(prefix)] or [None]
    if command is None:
        pytest.skip(f"not in the README: {prefix}")
    extra, expected_file = TINY_FLAGS[prefix]
    words = shlex.split(command)
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    while "=" in words[0] and not words[0].startswith("-"):  # leading VAR=value assignments
        name, value = words.pop(0).split("=", 1)
        environment[name] = value
    # The README's folders are in /tmp; the test writes into its own one instead.
    root_dir = str(tmp_path / os.path.basename(_root_dir(words)))
    words = [f"--root_dir={root_dir}" if w.startswith("--root_dir=") else w for w in words]
    words[0] = os.path.join(REPO, words[0]) if words[0].startswith(".venv/") else words[0]
    if words[0].endswith("/python"):  # the venv the tests run in may live elsewhere
        words[0] = sys.executable
    result = subprocess.run([*words, *extra], cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    path = os.path.join(root_dir, expected_file)
    assert os.path.exists(path), f"{command} wrote no {expected_file}"
    if path.endswith(".json"):
        with open(path) as f:
            assert json.load(f)
