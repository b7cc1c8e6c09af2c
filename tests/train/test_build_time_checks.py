"""Bad settings fail when the run is built, naming the setting, before anything is rendered."""

import gin
import pytest

from autosimulate_tf import configs
from autosimulate_tf.data import pipeline
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.train import train_autosimulate

BAD_SETTINGS = [
    # A psi start outside the simplex (the class probabilities of the pools).
    (
        "pools.gin",
        "CategoricalPoolsSimulator.initial_probabilities = (1.2, -0.2, 0.0, 0.0, 0.0)",
        "initial_probabilities",
    ),
    # A solver knob, checked when the hypergradient estimator is built.
    ("toy_gmm.gin", "conjugate_gradient.num_iterations = 0", "conjugate_gradient.num_iterations=0"),
    # A hand-off setting, checked before the first outer iteration.
    ("toy_gmm.gin", "HandOff.psi_selection_seeds = 0", "HandOff.psi_selection_seeds=0"),
    # A hand-off evaluator's budget, built (and checked) before tuning too.
    ("toy_gmm.gin", "final/ScratchTrainingEvaluator.num_steps = 0", "ScratchTrainingEvaluator.num_steps=0"),
    ("toy_gmm.gin", "HypergradientEstimator.curvature = 'fisher'", "HypergradientEstimator.curvature='fisher'"),
    (
        "toy_gmm.gin",
        "HypergradientEstimator.validation_objective = 'accuracy'",
        "HypergradientEstimator.validation_objective='accuracy'",
    ),
    ("toy_gmm.gin", "AutoSimulateTrainer.reinitialize_every = -1", "AutoSimulateTrainer.reinitialize_every=-1"),
    # An objective that does not fit the task loss, checked against the problem.
    (
        "toy_regression.gin",
        "HypergradientEstimator.validation_objective = 'expected_error'",
        "validation_objective='expected_error' needs a classifier",
    ),
]


@pytest.mark.parametrize("gin_file, binding, named", BAD_SETTINGS, ids=[b[1].split(" =")[0] for b in BAD_SETTINGS])
def test_bad_setting_fails_before_any_rendering(gin_file, binding, named, tmp_path, monkeypatch):
    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered before the bad setting was reported")

    monkeypatch.setattr(pipeline, "render_latents", no_rendering)
    monkeypatch.setattr(pipeline, "preflight_render", no_rendering)
    gin.clear_config()
    bindings = [binding]
    if binding.startswith("final/"):
        bindings.append("HandOff.final_training = True")
    configs.parse_gin([gin_file], bindings)
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(".", r"\.")):
        train_autosimulate(root_dir=str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()
