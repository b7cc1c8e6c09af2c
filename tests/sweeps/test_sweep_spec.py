"""Sweep lines and sweep files: grids, random lines, directives, and every malformed form named."""

import random

import pytest

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.sweeps import spec


def test_split_top_level_keeps_brackets_and_strings_whole():
    assert spec.split_top_level("1, (2, 3), 'a,b', [4, (5,)], @mlp,") == ["1", "(2, 3)", "'a,b'", "[4, (5,)]", "@mlp"]
    with pytest.raises(ValueError, match="unclosed"):
        spec.split_top_level("(1, 2")
    with pytest.raises(ValueError, match="unterminated"):
        spec.split_top_level("'a, b")


def test_grid_line_keeps_gin_text_of_each_value():
    axis = spec.parse_line("mlp.hidden_units=[(16, 16), (32, 32)]", "--sweep")
    assert axis == spec.GridAxis("mlp.hidden_units", ("(16, 16)", "(32, 32)"))
    axis = spec.parse_line("outer/keras.optimizers.Adam.learning_rate = [0.1, 0.3]", "--sweep")
    assert axis.name == "outer/keras.optimizers.Adam.learning_rate" and axis.values == ("0.1", "0.3")


@pytest.mark.parametrize(
    "line, message",
    [
        ("HypergradientEstimator.damping", "expected BINDING"),
        ("HypergradientEstimator.damping=0.1", "must be a list in brackets"),
        ("HypergradientEstimator.damping=[]", "non-empty list"),
        ("HypergradientEstimator.damping=[0.1, 0.1]", "a value twice"),
        ("damping value=[1]", "expected BINDING"),
        ("X=uniform(1.0)", "two numbers"),
        ("X=uniform(2, 1)", "low < high"),
        ("X=loguniform(0, 1)", "low > 0"),
        ("X=randint(1.5, 3)", "two integers"),
        ("X=choice()", "at least one value"),
    ],
)
def test_malformed_lines_are_named(line, message):
    with pytest.raises(ConfigError, match=message) as error:
        spec.parse_line(line, "--sweep")
    assert line in str(error.value)


def test_random_axes_draw_within_their_ranges():
    rng = random.Random(0)
    loguniform = spec.parse_line("X = loguniform(0.01, 1.0)", "f")
    randint = spec.parse_line("Y = randint(5, 7)", "f")
    choice = spec.parse_line("Z = choice('a', 'b')", "f")
    for _ in range(50):
        assert 0.01 <= float(loguniform.sample(rng)) <= 1.0
        assert int(randint.sample(rng)) in (5, 6, 7)
        assert choice.sample(rng) in ("'a'", "'b'")


def test_sweep_file_with_comments_multiline_lists_and_directives():
    text = """
    # The damping grid.
    HypergradientEstimator.damping = [0.03,   # small
                                      0.1]
    outer/keras.optimizers.Adam.learning_rate = loguniform(0.01, 1.0)
    num_random_trials: 3
    sweep_seed: 7
    """
    sweep = spec.parse_spec(["NUM_SAMPLES=[50, 200]"], text, "grid.txt")
    assert sweep.grid == (
        spec.GridAxis("NUM_SAMPLES", ("50", "200")),
        spec.GridAxis("HypergradientEstimator.damping", ("0.03", "0.1")),
    )
    assert sweep.random[0].text() == "loguniform(0.01, 1.0)"
    assert (sweep.num_random_trials, sweep.sweep_seed) == (3, 7)


def test_sweep_file_errors_name_the_line():
    with pytest.raises(ConfigError, match=r"grid\.txt:2"):
        spec.parse_spec((), "\nnum_random_trial: 3\n", "grid.txt")
    with pytest.raises(ConfigError, match=r"grid\.txt:1: a bracket"):
        spec.parse_spec((), "X = [1,\n 2\n", "grid.txt")
    with pytest.raises(ConfigError, match="Swept more than once: X"):
        spec.parse_spec(["X=[1]"], "X = [2]", "grid.txt")
