"""A bad sweep fails before any trial starts, naming the swept binding (in-process and from the binary)."""

import os
import re
import textwrap

import gin
import pytest
from sweep_testing import REPO, run_sweep_binary

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.sweeps import run, spec, trials, validation


def check(sweep_lines, fixed=(), seeds=(0,), seed_binding="SEED = {seed}", gin_files=("toy_gmm.gin",)):
    sweep = spec.parse_spec(sweep_lines)
    validation.validate_sweep(list(gin_files), list(fixed), [], trials.expand_trials(sweep, seeds), seed_binding)


def test_a_good_sweep_passes_and_leaves_gin_clear():
    check(["HypergradientEstimator.damping=[0.03, 0.1]", "NUM_SAMPLES=[50, 200]", "mlp.hidden_units=[(8,), (16, 16)]"])
    assert gin.config_str() == ""


@pytest.mark.parametrize(
    "line, named",
    [
        ("HypergradientEstimator.dampng=[0.1]", "HypergradientEstimator.dampng"),  # unknown parameter
        ("HypergradientEstimatr.damping=[0.1]", "HypergradientEstimatr.damping"),  # unknown configurable
        ("HypergradientEstimator.damping=[0.1, 1.0.0]", "HypergradientEstimator.damping = 1.0.0"),  # unparseable
        ("HypergradientEstimator.solver=[@no_such_solver]", "@no_such_solver"),  # unknown reference
        ("NUM_SAMPLS=[50]", "NUM_SAMPLS"),  # gin would accept this macro and nothing would read it
    ],
)
def test_a_bad_swept_binding_is_named(line, named):
    with pytest.raises(ConfigError, match="Swept") as error:
        check([line])
    assert named in str(error.value)


def test_fixed_and_swept_at_once_and_the_seed_binding():
    with pytest.raises(ConfigError, match=r"Both fixed .* and swept .*: NUM_SAMPLES"):
        check(["NUM_SAMPLES=[50]"], fixed=["NUM_SAMPLES = 20"])
    with pytest.raises(ConfigError, match="SEED is the seed binding"):
        check(["SEED=[1, 2]"])
    with pytest.raises(ConfigError, match="fixed configuration"):
        check(["NUM_SAMPLES=[50]"], fixed=["AutoSimulateTrainer.no_such = 1"])
    with pytest.raises(ConfigError, match=r"RANDOM_SEED .* is not a macro"):
        check(["NUM_SAMPLES=[50]"], seed_binding="RANDOM_SEED")
    check(["NUM_SAMPLES=[50]"], seed_binding="AutoSimulateTrainer.seed = {seed}")


def test_nothing_is_written_before_the_checks_pass(tmp_path):
    root_dir = tmp_path / "sweep"
    with pytest.raises(ConfigError, match="dampng"):
        run.run_sweep(str(root_dir), ["toy_gmm.gin"], sweep_lines=["HypergradientEstimator.dampng=[0.1]"], seeds=[0])
    assert not root_dir.exists()


def test_the_binary_exits_2_naming_a_misspelled_binding_before_any_trial(tmp_path):
    root_dir = tmp_path / "sweep"
    process = run_sweep_binary(
        f"--root_dir={root_dir}",
        "--gin_file=toy_gmm.gin",
        "--sweep=HypergradientEstimator.damping=[0.1, 1.0]",
        "--sweep=AutoSimulateTrainer.num_sample=[50, 200]",
        "--seeds=0,1",
    )
    assert process.returncode == 2, process.stderr[-2000:]
    assert "Bad sweep" in process.stderr and "AutoSimulateTrainer.num_sample" in process.stderr
    assert "Traceback" not in process.stderr
    assert not os.path.exists(root_dir)


def test_the_readme_sweep_file_example_parses_and_passes_the_checks():
    with open(os.path.join(REPO, "README.md")) as f:
        section = f.read().split("## Sweeps", 1)[1].split("\n## ", 1)[0]
    # Fenced blocks, opening and closing fences paired in order (the example sits in an indented list item).
    blocks = re.findall(r"^ *```\w*\n(.*?)^ *```$", section, flags=re.S | re.M)
    (example,) = [block for block in blocks if "num_random_trials" in block]
    sweep = spec.parse_spec((), textwrap.dedent(example), "README")
    assert sweep.random and sweep.grid and sweep.num_random_trials == 8
    expanded = trials.expand_trials(sweep, [0], sweep.num_random_trials)
    validation.validate_sweep(["toy_gmm.gin"], [], [], expanded, "SEED = {seed}")
