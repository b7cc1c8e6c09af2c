"""Expanding a definition into trials, their folder names, and sweep.json on a re-run."""

import pytest

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.sweeps import spec, trials


def test_grid_times_seeds_in_a_fixed_order_with_readable_names():
    sweep = spec.parse_spec(["HypergradientEstimator.damping=[0.1, 1.0]", "NUM_SAMPLES=[50, 200]"])
    expanded = trials.expand_trials(sweep, seeds=[0, 1])
    assert len(expanded) == 8
    assert [trial.seed for trial in expanded[:2]] == [0, 1]
    assert expanded[3].bindings == {"HypergradientEstimator.damping": "0.1", "NUM_SAMPLES": "200"}
    assert expanded[3].name == "trial-003-damping=0.1,NUM_SAMPLES=200-seed1"
    assert expanded[3].gin_bindings("SEED = {seed}") == [
        "HypergradientEstimator.damping = 0.1",
        "NUM_SAMPLES = 200",
        "SEED = 1",
    ]
    assert trials.seed_binding_line("run_comparison.seeds = ({seed},)", 4) == "run_comparison.seeds = (4,)"
    assert trials.seed_binding_line("AutoSimulateTrainer.seed", 4) == "AutoSimulateTrainer.seed = 4"


def test_folder_names_are_safe():
    sweep = spec.parse_spec(["mlp.hidden_units=[(16, 16)]", "Problem.loss=['squared_error']"])
    (trial,) = trials.expand_trials(sweep, seeds=[])
    assert trial.name == "trial-000-hidden_units=16_16,loss=squared_error"


def test_random_draws_are_shared_by_grid_points_and_reproducible():
    sweep = spec.parse_spec(["NUM_SAMPLES=[50, 200]", "HypergradientEstimator.damping=loguniform(0.01, 1.0)"])
    first = trials.expand_trials(sweep, seeds=[0], num_random_trials=3, sweep_seed=5)
    again = trials.expand_trials(sweep, seeds=[0], num_random_trials=3, sweep_seed=5)
    other = trials.expand_trials(sweep, seeds=[0], num_random_trials=3, sweep_seed=6)
    assert len(first) == 6 and first == again and first != other
    dampings = [trial.bindings["HypergradientEstimator.damping"] for trial in first]
    assert dampings[:3] == dampings[3:]  # every grid point sees the same draws
    with pytest.raises(ConfigError, match="num_random_trials"):
        trials.expand_trials(sweep, seeds=[0])


def test_a_different_sweep_in_the_same_root_dir_fails(tmp_path):
    sweep = spec.parse_spec(["NUM_SAMPLES=[50, 200]"])
    expanded = trials.expand_trials(sweep, seeds=[0])
    definition = trials.definition_json(sweep, seeds=[0], gin_files=["toy_gmm.gin"])
    assert trials.load_or_record(str(tmp_path), definition, expanded) == expanded
    assert trials.load_or_record(str(tmp_path), definition, expanded) == expanded
    changed = trials.definition_json(sweep, seeds=[0, 1], gin_files=["toy_gmm.gin"])
    with pytest.raises(ConfigError, match=r"differs in: seeds"):
        trials.load_or_record(str(tmp_path), changed, expanded)
