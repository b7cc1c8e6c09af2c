"""The worked plug-in example (`examples/`): its README's commands run, its simulator does what it says.

Every command in a ```bash block of `examples/README.md` is run here as printed, from the
repository root, with flags appended that shrink its budget to seconds (`CASES`). Output
folders under `/tmp/` go to pytest's temporary folder instead, and `.venv/bin/` becomes
the folder of the interpreter running the tests. A README command that no case claims, or
a case whose command left the README, fails `test_every_readme_command_is_run`.

The commands start together on first use and run in parallel with the in-process tests
below them; each command's test waits for its own command only. TensorFlow is imported by
the in-process tests, not at collection, so the commands start without waiting for it.
"""

import dataclasses
import importlib
import inspect
import json
import math
import os
import re
import subprocess
import sys
from concurrent import futures

import numpy as np
import pytest
from readme_blocks import bash_commands

from autosimulate_tf import results_schema as schema
from autosimulate_tf.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")
EXAMPLE_DIR = os.path.join(EXAMPLES, "pulses")
README = os.path.join(EXAMPLES, "README.md")
COMMAND_TIMEOUT_S = 600

# Budgets that keep every command to a few seconds of work: what is checked is that it runs
# and writes what the README says, not how good the result is.
TWO_ITERATIONS = ("train_autosimulate.num_outer_iterations = 2",)
TINY_TRAINING = (
    "NUM_SAMPLES = 32",
    "AutoSimulateTrainer.num_initial_inner_steps = 5",
    "AutoSimulateTrainer.num_inner_steps = 2",
    "final/ScratchTrainingEvaluator.num_samples = 32",
    "final/ScratchTrainingEvaluator.num_steps = 2",
)
TINY_REFERENCE = ("reference/ScratchTrainingEvaluator.num_steps = 2",)
TINY_COMPARISON = (
    "run_comparison.seeds = (0,)",
    "run_method.max_samples = 200",
    "run_method.max_outer_iterations = 2",
    "ScratchTrainingEvaluator.num_samples = 50",
    "ScratchTrainingEvaluator.num_steps = 5",
    "BayesianOptimization.num_startup_trials = 2",
    "LearningToSimulate.num_policy_samples = 2",
)
TINY_PYTHON = ("--num_outer_iterations=2", "--num_samples=32", "--evaluation_samples=32", "--evaluation_steps=2")


def gin_flags(bindings) -> tuple[str, ...]:
    """`--gin_bindings=...` flags, quoted for bash."""
    return tuple(f"--gin_bindings='{binding}'" for binding in bindings)


@dataclasses.dataclass(frozen=True)
class Case:
    """How one README command is recognised (`pattern`, a regex) and shrunk (`extra_flags`)."""

    pattern: str
    extra_flags: tuple[str, ...] = ()
    after: str | None = None  # the case whose output this command reads


CASES = {
    "train": Case(
        r"autosimulate-train --gin_file=examples/pulses/train\.gin --root_dir=\S+$",
        gin_flags(TWO_ITERATIONS + TINY_TRAINING + TINY_REFERENCE),
    ),
    # --inspect prints what TensorBoard finds in the logdir and exits, instead of serving it.
    "tensorboard": Case(r"tensorboard --logdir=", ("--inspect",), after="train"),
    "hidden_psi": Case(
        r"autosimulate-train --gin_file=examples/pulses/train\.gin .*initial_position_mean",
        gin_flags(TINY_TRAINING + TINY_REFERENCE),
    ),
    "compare": Case(r"autosimulate-compare --gin_file=examples/pulses/compare\.gin", gin_flags(TINY_COMPARISON)),
    "regression": Case(
        r"autosimulate-train --gin_file=examples/pulses/regression\.gin", gin_flags(TWO_ITERATIONS + TINY_TRAINING)
    ),
    "python": Case(r"python examples/pulses/run_from_python\.py", TINY_PYTHON),
}


def match_cases(commands: list[str]) -> tuple[dict[str, str], list[str]]:
    """`({case: its README command}, [commands no case claims])`; a case may claim one command."""
    claimed, unclaimed = {}, []
    for command in commands:
        names = [name for name, case in CASES.items() if re.search(case.pattern, command)]
        if len(names) != 1:
            unclaimed.append(f"{command}  (claimed by {names or 'no case'})")
        elif names[0] in claimed:
            unclaimed.append(f"{command}  (case {names[0]!r} already runs {claimed[names[0]]!r})")
        else:
            claimed[names[0]] = command
    return claimed, unclaimed


def shell_command(command: str, case: Case, tmp_dir: str) -> str:
    """The README command as this test runs it: own interpreter, own output folder, tiny budget."""
    # /tmp/ first: the interpreter's own folder may itself be under /tmp/.
    command = command.replace("/tmp/", tmp_dir + "/")
    command = command.replace(".venv/bin/", os.path.dirname(sys.executable) + "/")
    return " ".join((command, *case.extra_flags))


@dataclasses.dataclass
class Run:
    """A finished command: what ran, its exit status and its stdout and stderr together."""

    command: str
    returncode: int
    output: str

    def check_succeeded(self) -> None:
        """Fails with the end of the output unless the command exited 0."""
        assert self.returncode == 0, f"`{self.command}` exited {self.returncode}:\n{self.output[-4000:]}"


def run_in_shell(command: str, prerequisite: futures.Future | None) -> Run:
    """Runs `command` with bash from the repository root (after `prerequisite`, if any)."""
    if prerequisite is not None:
        prerequisite.result()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.run(
        ["bash", "-c", command],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    return Run(command, process.returncode, process.stdout)


@pytest.fixture(scope="module")
def readme_text() -> str:
    """The example's README."""
    with open(README) as f:
        return f.read()


@pytest.fixture(scope="module")
def runs(readme_text, tmp_path_factory):
    """`{case: Future of its Run}`, every claimed README command started at once."""
    tmp_dir = str(tmp_path_factory.mktemp("readme_commands"))
    claimed, _ = match_cases(bash_commands(readme_text))
    # Commands that read another's output wait on a thread of their own, so all can run at once.
    executor = futures.ThreadPoolExecutor(max_workers=max(1, len(claimed)))
    started = {}
    for name in sorted(claimed, key=lambda name: CASES[name].after is not None):
        case = CASES[name]
        started[name] = executor.submit(
            run_in_shell, shell_command(claimed[name], case, tmp_dir), started.get(case.after)
        )
    yield {"tmp_dir": tmp_dir, **started}
    executor.shutdown(wait=True)


def finished(runs, name: str) -> Run:
    """The successful run of case `name` (a failure when the README does not have it)."""
    if name not in runs:
        pytest.fail(f"examples/README.md has no command for case {name!r}; see test_every_readme_command_is_run.")
    run = runs[name].result()
    run.check_succeeded()
    return run


def read_json(runs, *parts) -> dict:
    """A JSON file under the tests' stand-in for /tmp."""
    with open(os.path.join(runs["tmp_dir"], *parts)) as f:
        return json.load(f)


def assert_finite_scores(results: dict, keys) -> None:
    """Every `keys` entry of `results` is a finite number."""
    for key in keys:
        assert isinstance(results[key], int | float) and math.isfinite(results[key]), (key, results[key])


def test_every_readme_command_is_run(readme_text, runs):
    # Asking for `runs` here, in the first test, starts the commands before the in-process tests.
    commands = bash_commands(readme_text)
    claimed, unclaimed = match_cases(commands)
    assert not unclaimed, "README commands that no test case runs:\n" + "\n".join(unclaimed)
    missing = sorted(set(CASES) - set(claimed))
    assert not missing, f"test cases whose command is not in examples/README.md: {missing}"


def test_a_command_no_case_claims_is_reported():
    commands = bash_commands(
        "```bash\n# a comment\nPYTHONPATH=examples/pulses .venv/bin/autosimulate-train \\\n"
        "    --gin_file=examples/pulses/regression.gin --root_dir=/tmp/r\n.venv/bin/autosimulate-sweep --x\n```\n"
    )
    assert commands[0] == (
        "PYTHONPATH=examples/pulses .venv/bin/autosimulate-train --gin_file=examples/pulses/regression.gin "
        "--root_dir=/tmp/r"
    )
    claimed, unclaimed = match_cases(commands)
    assert list(claimed) == ["regression"]
    assert unclaimed == [".venv/bin/autosimulate-sweep --x  (claimed by no case)"]


def test_readme_code_excerpts_are_copied_from_the_example(readme_text):
    """Each ```python and ```gin block is made of runs of lines of one example file, `...` marking a gap."""
    sources = {}
    for name in os.listdir(EXAMPLE_DIR):
        if name.endswith((".py", ".gin")):
            with open(os.path.join(EXAMPLE_DIR, name)) as f:
                sources[name] = f.read()
    for language in ("python", "gin"):
        for block in re.findall(rf"```{language}\n(.*?)```", readme_text, flags=re.S):
            pieces = [piece for piece in re.split(r"^\s*\.\.\.\n", block, flags=re.M) if piece.strip()]
            assert any(all(piece in source for piece in pieces) for source in sources.values()), (
                f"This README {language} excerpt is not copied from a file in examples/pulses:\n{block}"
            )


# ---- In-process tests of the simulator (they run while the commands above do) ----


@pytest.fixture(scope="module")
def tf():
    """TensorFlow, imported once the commands are running."""
    import tensorflow

    return tensorflow


@pytest.fixture(scope="module")
def pipeline():
    """The package's render pipeline."""
    from autosimulate_tf.data import pipeline

    return pipeline


@pytest.fixture(scope="module")
def pulses():
    """The example's simulator module, imported the way gin's `import pulses` does."""
    sys.path.insert(0, EXAMPLE_DIR)
    try:
        yield importlib.import_module("pulses")
    finally:
        sys.path.remove(EXAMPLE_DIR)


def test_renders_have_the_declared_shape_dtype_and_range(pulses, pipeline, tf):
    simulator = pulses.PulseShapeSimulator()
    latents = simulator.sample_latents(200, seed=tf.constant([3, 4]))
    inputs, labels, valid = pipeline.render_latents(simulator, latents)
    assert bool(tf.reduce_all(valid))
    assert inputs.shape == (200, *simulator.observation_shape) and inputs.dtype == tf.float32
    assert labels.dtype == tf.int32 and set(labels.numpy()) == {pulses.BUMP, pulses.BOX}
    # Pulse heights lie in AMPLITUDE_RANGE; the noise (0.1) almost never adds more than 6 sigma.
    assert float(tf.reduce_max(inputs)) <= pulses.AMPLITUDE_RANGE[1] + 0.6
    assert float(tf.reduce_min(inputs)) >= -0.6


def test_the_two_shapes_differ_at_the_same_position_and_width(pulses):
    silent = np.zeros(pulses.SIGNAL_LENGTH)
    bump = pulses.render_pulse(pulses.BUMP, 0.5, 0.1, 1.0, silent, 0.1)
    box = pulses.render_pulse(pulses.BOX, 0.5, 0.1, 1.0, silent, 0.1)
    assert bump.shape == box.shape == (pulses.SIGNAL_LENGTH,)
    assert set(np.unique(box)) == {0.0, 1.0}, "a box is flat: 0 outside, its height inside"
    assert 0.0 < bump.min() < 0.01 and 0.95 < bump.max() <= 1.0
    assert np.abs(bump - box).sum() > 3.0, "the shapes must differ by far more than one sample's noise"


def test_the_position_variant_labels_signals_by_their_centre(pulses, pipeline, tf):
    simulator = pulses.PulsePositionSimulator()
    latents = simulator.sample_latents(16, seed=tf.constant([5, 6]))
    _, labels, _ = pipeline.render_latents(simulator, latents)
    assert labels.dtype == tf.float32
    np.testing.assert_allclose(labels.numpy(), latents["position"].numpy(), rtol=1e-6)


def test_every_psi_component_reaches_the_latent_distribution(pulses, tf):
    simulator = pulses.PulseShapeSimulator()
    assert simulator.parameter_names == [
        "position_mean",
        "position_scale",
        "log_width_mean",
        "log_width_scale",
        "class_probabilities",
    ]
    latents = simulator.sample_latents(64, seed=tf.constant([7, 8]))
    with tf.GradientTape() as tape:
        log_prob = tf.reduce_sum(simulator.log_prob(latents))
    gradients = tape.gradient(log_prob, simulator.psi_variables)
    for name, gradient in zip(simulator.parameter_names, gradients, strict=True):
        assert gradient is not None and float(tf.norm(gradient)) > 0, f"psi {name!r} does not act on p(c | psi)"
    assert set(simulator.search_space()) == set(simulator.parameter_names)


def test_an_initial_psi_outside_its_domain_is_refused_by_name(pulses):
    with pytest.raises(ConfigError, match="position_mean"):
        pulses.PulseShapeSimulator(initial_position_mean=1.5)  # Sigmoid: the mean centre lies in (0, 1)
    with pytest.raises(ConfigError, match="noise_scale"):
        pulses.PulsePositionSimulator(noise_scale=0.0)


def test_real_data_are_fixed_by_their_seed_and_shaped_like_renders(pulses):
    shapes = pulses.pulse_real_data(num_validation=20, num_test=30)
    again = pulses.pulse_real_data(num_validation=20, num_test=30)
    positions = pulses.pulse_real_data(label="position", num_validation=20, num_test=30)
    assert shapes.validation_inputs.shape == (20, pulses.SIGNAL_LENGTH)
    assert shapes.test_inputs.shape == (30, pulses.SIGNAL_LENGTH)
    np.testing.assert_array_equal(shapes.test_inputs, again.test_inputs)
    np.testing.assert_array_equal(shapes.test_inputs, positions.test_inputs)
    assert shapes.test_labels.dtype == np.int32 and positions.test_labels.dtype == np.float32
    with pytest.raises(ConfigError, match="label"):
        pulses.pulse_real_data(label="width")


# ---- What each README command wrote ----


def test_train_writes_results_with_every_key(runs):
    run = finished(runs, "train")
    assert "Found simulator parameters" in run.output
    results = read_json(runs, "pulses", "results.json")
    assert set(schema.RESULTS_KEYS) <= set(results)
    assert results[schema.OUTER_ITERATIONS] == 2
    assert_finite_scores(results, [*schema.SCORES, *schema.INITIAL_SCORES, schema.WALL_CLOCK_S])
    assert_finite_scores(results[schema.FINAL_MODEL], schema.SCORES)
    assert_finite_scores(results[schema.REAL_DATA_REFERENCE], (schema.TEST_LOSS, schema.TEST_ACCURACY))
    psi = results[schema.FINAL_PSI]
    assert set(psi) == {"position_mean", "position_scale", "log_width_mean", "log_width_scale", "class_probabilities"}
    assert 0 < psi["position_mean"] < 1 and math.isclose(sum(psi["class_probabilities"]), 1.0, rel_tol=1e-5)
    folder = os.path.join(runs["tmp_dir"], "pulses")
    for name in ("psi_trajectory.png", "psi_trajectory.jsonl", "operative_config.gin", "checkpoints", "train"):
        assert os.path.exists(os.path.join(folder, name)), name


def test_tensorboard_finds_the_run_summaries(runs):
    output = finished(runs, "tensorboard").output
    for tag in ("val_accuracy", "hypergradient_norm", "psi/position_mean/0", "psi/class_probabilities/1"):
        assert tag in output


def test_the_hidden_psi_run_starts_at_the_real_data_parameters(runs, pulses):
    finished(runs, "hidden_psi")
    results = read_json(runs, "pulses_hidden", "results.json")
    assert results[schema.OUTER_ITERATIONS] == 0
    # The hidden parameters are the defaults of pulse_real_data: the README must bind the same values.
    real = {name: parameter.default for name, parameter in inspect.signature(pulses.pulse_real_data).parameters.items()}
    psi = results[schema.FINAL_PSI]
    assert math.isclose(psi["position_mean"], real["position_mean"], rel_tol=1e-5)
    assert math.isclose(psi["position_scale"], real["position_scale"], rel_tol=1e-5)
    assert math.isclose(math.exp(psi["log_width_mean"]), real["width"], rel_tol=1e-5)
    assert math.isclose(psi["log_width_scale"], real["log_width_scale"], rel_tol=1e-5)
    np.testing.assert_allclose(psi["class_probabilities"], real["class_probabilities"], rtol=1e-5)
    assert_finite_scores(results[schema.FINAL_MODEL], schema.SCORES)


def test_compare_scores_every_method(runs):
    finished(runs, "compare")
    comparison = read_json(runs, "pulses_compare", "comparison.json")
    methods = ("autosimulate", "learning_to_simulate", "random_search", "bayesian_optimization", "default")
    assert set(comparison["methods"]) == set(methods)
    assert comparison["score"] == schema.VAL_ACCURACY and comparison["seeds"] == [0]
    for method, summary in comparison["methods"].items():
        final = summary["final_val_accuracy"]
        assert math.isfinite(final) and 0 <= final <= 1, (method, final)
    runs_file = read_json(runs, "pulses_compare", "runs.json")
    assert all(len(runs_file["runs"][method]) == 1 for method in methods)
    assert os.path.exists(os.path.join(runs["tmp_dir"], "pulses_compare", "table.txt"))


def test_regression_reports_losses_and_no_accuracy(runs):
    finished(runs, "regression")
    results = read_json(runs, "pulses_regression", "results.json")
    assert results[schema.VAL_ACCURACY] is None and results[schema.TEST_ACCURACY] is None
    assert_finite_scores(results, (schema.VAL_LOSS, schema.TEST_LOSS, f"initial_{schema.VAL_LOSS}"))
    assert_finite_scores(results[schema.FINAL_MODEL], (schema.VAL_LOSS, schema.TEST_LOSS))


def test_the_python_script_tunes_and_prints_both_fresh_model_scores(runs):
    output = finished(runs, "python").output
    scores = re.findall(r"Fresh model on the (initial|found) psi: +real test accuracy (\d\.\d{3})", output)
    assert [which for which, _ in scores] == ["initial", "found"], output[-2000:]
    assert all(0 <= float(score) <= 1 for _, score in scores)
    results = read_json(runs, "pulses_python", "results.json")
    assert results[schema.OUTER_ITERATIONS] == 2
    assert set(schema.RESULTS_KEYS) <= set(results)
