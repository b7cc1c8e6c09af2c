"""compare.py on a tiny budget: structure and accounting of comparison.json (not the ratios), every shipped
compare_*.gin, the regression comparison, settings checked before any method runs, and merging."""

import json
import math
import os

import gin
import pytest

from autosimulate_tf import configs
from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import ACCURACY, Target
from autosimulate_tf.comparison import merge_comparisons, runners
from autosimulate_tf.comparison.compare import run_comparison, write_comparison
from autosimulate_tf.comparison.referee import REFEREE_SIMULATED_SAMPLES, method_score_name
from autosimulate_tf.errors import ConfigError

COMPARE_FILES = [path for path in configs.shipped_gin_files() if os.path.basename(path).startswith("compare_")]
M = 100  # samples per baseline evaluation
STEPS = 20  # training steps per baseline evaluation
N = 40  # AutoSimulate samples per outer iteration
TINY = [
    "run_comparison.seeds = (0, 1)",
    "run_method.max_samples = 400",
    "run_method.max_outer_iterations = 3",
    "run_method.stop_at_target = False",
    f"ScratchTrainingEvaluator.num_samples = {M}",
    f"ScratchTrainingEvaluator.num_steps = {STEPS}",
    f"AutoSimulateTrainer.num_samples = {N}",
    "AutoSimulateTrainer.num_initial_inner_steps = 10",
    "AutoSimulateTrainer.num_inner_steps = 5",
    "LearningToSimulate.num_policy_samples = 2",
    "HandOff.final_training = False",
    "HandOff.real_data_reference = False",
    "SlowRenderSimulator.work_ms = 0.5",  # compare_gmm_render_cost.gin: keep the timed suite short
    "scene_target_data.num_validation = 30",  # compare_scenes.gin: a small target set
    "scene_target_data.num_test = 30",
    # The *_referee.gin configs: a referee as small as a baseline evaluation.
    f"referee/ScratchTrainingEvaluator.num_samples = {M}",
    f"referee/ScratchTrainingEvaluator.num_steps = {STEPS}",
]
# Image renderers cost real time: one seed checks the same accounting.
ONE_SEED = {name: ["run_comparison.seeds = (0,)"] for name in ("compare_scenes.gin", "compare_mnist.gin")}
# Files that add Bayesian optimisation to the four standard methods.
WITH_BAYESIAN_OPTIMIZATION = (
    "compare_gmm",
    "compare_regression",
    "compare_mnist",
    "compare_scenes",
    "compare_dimension",
)


def compare_file(name: str) -> str:
    return next(path for path in COMPARE_FILES if os.path.basename(path) == name)


def tiny_target(gin_path: str) -> str:
    """A target the tiny budget can reach, for whichever target the file binds."""
    gin.clear_config()
    configs.parse_gin([gin_path])
    try:
        gin.query_parameter("run_comparison.target_loss")
    except ValueError:  # a classification comparison binds target_accuracy
        return "run_comparison.target_accuracy = 0.55"
    finally:
        gin.clear_config()
    return "run_comparison.target_loss = 0.2"


def test_shipped_compare_configs_exist():
    assert {os.path.basename(path) for path in COMPARE_FILES} >= {
        "compare_gmm.gin",
        "compare_pools.gin",
        "compare_digits.gin",
        "compare_regression.gin",
    }


def check_curve_accounting(runs: dict, methods: set) -> None:
    # AutoSimulate: N samples, one objective evaluation and >= 1 HVP per outer iteration; capped at 3 iterations.
    for run in runs["autosimulate"]:
        for index, point in enumerate(run["curve"], start=1):
            assert set(schema.CURVE_POINT_KEYS) <= set(point)
            assert point[schema.SIMULATED_SAMPLES] == N * index
            assert point[schema.OBJECTIVE_EVALUATIONS] == index
            assert point[schema.MODEL_STEPS] == 10 + 5 * (index - 1)
            assert point[schema.HVP_COUNT] >= 2 * index
        assert len(run["curve"]) == 3
        assert 0.0 < run["hypergradient_overhead_fraction"] < 1.0
    # Search baselines: every evaluation costs M samples and STEPS steps, no HVPs; they stop at the sample budget.
    for method in methods - {"autosimulate", "default"}:
        for run in runs[method]:
            for index, point in enumerate(run["curve"], start=1):
                assert set(schema.CURVE_POINT_KEYS) <= set(point)
                assert point[schema.SIMULATED_SAMPLES] == M * index
                assert point[schema.MODEL_STEPS] == STEPS * index
                assert point[schema.OBJECTIVE_EVALUATIONS] == index
                assert point[schema.HVP_COUNT] == 0
            assert run["curve"][-1][schema.SIMULATED_SAMPLES] == 400
    for run in runs["default"]:
        assert len(run["curve"]) == 1 and run["curve"][0][schema.SIMULATED_SAMPLES] == M


def check_scores(runs: dict, summaries: dict, scoring: str, classification: bool) -> None:
    """Losses everywhere; accuracies in [0, 1] for classification and None for regression."""
    score_key = schema.VAL_ACCURACY if classification else schema.VAL_LOSS
    for method, method_runs in runs.items():
        for run in method_runs:
            for point in run["curve"]:
                assert math.isfinite(point[schema.VAL_LOSS]) and math.isfinite(point[schema.TEST_LOSS])
                for name in (schema.VAL_ACCURACY, schema.TEST_ACCURACY):
                    assert (point[name] is None) == (not classification), (method, name)
                # Every method's render seconds are counted, as part of its wall-clock.
                assert 0.0 < point[schema.RENDER_WALL_CLOCK_S] <= point[schema.WALL_CLOCK_S], method
            if method not in ("autosimulate", "default"):
                # Their own best-so-far score never gets worse (under a referee it is kept beside the referee's).
                own = method_score_name(score_key) if scoring == "referee" else score_key
                values = [point[own] for point in run["curve"]]
                assert values == sorted(values, reverse=not classification), method
        summary = summaries[method]
        for cost in ("simulated_samples", "wall_clock_s", "objective_evaluations"):
            assert f"{cost}_to_target" in summary, (method, cost)
        for cost in schema.COSTS:
            assert f"total_{cost}" in summary, (method, cost)
        num_seeds = len(gin.query_parameter("run_comparison.seeds"))
        assert len(summary["seeds"]) == num_seeds and 0.0 <= summary["fraction_reaching_target"] <= 1.0
        assert summary["final_test_loss"] > 0
        if classification:
            assert 0.0 <= summary["final_test_accuracy"] <= 1.0
        else:
            assert summary["final_val_accuracy"] is None and summary["final_test_accuracy"] is None


@pytest.mark.parametrize("gin_path", COMPARE_FILES, ids=os.path.basename)
def test_tiny_comparison_writes_consistent_accounting(gin_path, tmp_path):
    bindings = [*TINY, tiny_target(gin_path), *ONE_SEED.get(os.path.basename(gin_path), [])]
    configs.parse_gin([gin_path], bindings)
    comparison = run_comparison(root_dir=str(tmp_path))
    on_disk = json.loads((tmp_path / "comparison.json").read_text())
    runs = json.loads((tmp_path / "runs.json").read_text())["runs"]
    # Every config runs the four standard methods; some add Bayesian optimisation.
    methods = set(gin.query_parameter("run_comparison.methods"))
    assert methods >= {"autosimulate", "learning_to_simulate", "random_search", "default"}
    assert ("bayesian_optimization" in methods) == os.path.basename(gin_path).startswith(WITH_BAYESIAN_OPTIMIZATION)
    assert set(on_disk["methods"]) == methods and set(runs) == methods
    assert on_disk["reference"] == "autosimulate"
    assert set(on_disk["ratios_to_reference"]) == methods - {"autosimulate"}
    classification = "target_accuracy" in on_disk
    assert on_disk["score"] == (schema.VAL_ACCURACY if classification else schema.VAL_LOSS)
    check_curve_accounting(runs, methods)
    check_scores(runs, on_disk["methods"], on_disk["scoring"], classification)

    # Matching each baseline's final score: the baseline needs at most what it spent.
    assert set(on_disk["samples_to_match_final"]) == methods - {"autosimulate"}
    for method, match in on_disk["samples_to_match_final"].items():
        assert f"target_{on_disk['score']}" in match
        if match["method_simulated_samples"] is not None:
            assert match["method_simulated_samples"] <= on_disk["methods"][method]["total_simulated_samples"]
    if on_disk["scoring"] == "referee":
        # Every point says which point's psi its score came from; a run's final score is its own.
        for method_runs in runs.values():
            for run in method_runs:
                assert all(p[REFEREE_SIMULATED_SAMPLES] <= p[schema.SIMULATED_SAMPLES] for p in run["curve"])
                assert run["curve"][-1][REFEREE_SIMULATED_SAMPLES] == run["curve"][-1][schema.SIMULATED_SAMPLES]

    score_name = "accuracy" if classification else "loss"
    expected_plots = {f"{score_name}_vs_samples.png", f"{score_name}_vs_time.png", "psi_trajectories.png"}
    assert {os.path.basename(path) for path in comparison["plots"]} == expected_plots
    for name in expected_plots:
        assert (tmp_path / name).stat().st_size > 1000
    table = (tmp_path / "table.txt").read_text()
    assert "autosimulate" in table and f"validation {score_name}" in table
    assert comparison["methods"] == on_disk["methods"]
    assert "score_at_reference_evaluations" in on_disk


def test_regression_comparison_runs_every_method_and_reports_losses_without_accuracies(tmp_path):
    """Every method on the regression toy: ranked by validation loss, every accuracy None."""
    configs.parse_gin(
        [compare_file("compare_regression.gin")],
        [*TINY, "run_comparison.seeds = (0,)", "run_comparison.target_loss = 0.5", "run_method.max_samples = 300"],
    )
    comparison = run_comparison(root_dir=str(tmp_path))
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert set(comparison["methods"]) == set(runners.METHODS)
    assert comparison["target_loss"] == 0.5 and "target_accuracy" not in comparison
    assert runs["target_loss"] == 0.5
    for method, summary in comparison["methods"].items():
        assert summary["final_val_accuracy"] is None and summary["final_test_accuracy"] is None, method
        assert summary["final_val_loss"] > 0 and summary["final_test_loss"] > 0, method
        (run,) = runs["runs"][method]
        assert all(point[schema.VAL_ACCURACY] is None for point in run["curve"]), method
        first = next((p for p in run["curve"] if p[schema.VAL_LOSS] <= 0.5), None)
        expected = first[schema.SIMULATED_SAMPLES] if first else None
        assert summary["simulated_samples_to_target"] == expected, method
    # The initial psi's fresh model scores the same loss for the default as for LTS's first evaluation.
    assert runs["runs"]["default"][0]["curve"][0]["psi"] == runs["runs"]["learning_to_simulate"][0]["curve"][0]["psi"]


@pytest.fixture
def nothing_may_run(monkeypatch):
    """Fails the test if any method starts training."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("a method ran before the settings were checked")

    monkeypatch.setattr(runners, "run_autosimulate", must_not_run)
    monkeypatch.setattr(runners, "run_search_method", must_not_run)


@pytest.mark.parametrize(
    ("gin_file", "bindings", "match"),
    [
        (
            "compare_regression.gin",
            ["run_comparison.target_accuracy = 0.9"],
            r"run_comparison\.target_loss must be bound",
        ),
        ("compare_gmm.gin", ["run_comparison.target_loss = 0.1"], r"run_comparison\.target_accuracy must be bound"),
        ("compare_gmm.gin", ["run_comparison.target_accuracy = 1.5"], r"run_comparison\.target_accuracy=1\.5"),
        (
            "compare_regression.gin",
            ["LearningToSimulate.reward = 'accuracy'"],
            r"LearningToSimulate\.reward='accuracy'",
        ),
        ("compare_gmm.gin", ["run_method.scoring = 'best'"], r"run_method\.scoring='best'"),
        ("compare_gmm.gin", ["run_method.referee_every_samples = 10"], r"needs run_method\.scoring = 'referee'"),
        ("compare_gmm.gin", ["ScratchTrainingEvaluator.num_samples = 1"], r"ScratchTrainingEvaluator\.num_samples=1"),
        ("compare_gmm.gin", ["run_comparison.methods = ('autosimulate', 'grid')"], r"unknown entries \['grid'\]"),
        ("compare_gmm.gin", ["run_comparison.seeds = ()"], r"run_comparison\.seeds must name"),
        (
            "compare_gmm_referee.gin",
            ["referee/ScratchTrainingEvaluator.fine_tune = True"],
            r"referee/ScratchTrainingEvaluator\.fine_tune must be False",
        ),
    ],
)
def test_bad_settings_are_refused_before_any_method_runs(gin_file, bindings, match, nothing_may_run, tmp_path):
    configs.parse_gin([compare_file(gin_file)], bindings)
    with pytest.raises(ConfigError, match=match):
        run_comparison(root_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_run_method_checks_its_settings_before_building_anything():
    target = Target(ACCURACY, 0.9)
    with pytest.raises(ConfigError, match=r"run_method\.scoring='best'"):
        runners.run_method("default", 0, target, scoring="best")
    with pytest.raises(ConfigError, match=r"referee_every_samples=100 needs run_method\.scoring = 'referee'"):
        runners.run_method("default", 0, target, referee_every_samples=100)
    with pytest.raises(ConfigError, match=r"run_method\.max_samples=0"):
        runners.run_method("default", 0, target, max_samples=0)


def synthetic_run(values, seed, key=schema.VAL_ACCURACY):
    curve = [
        {
            schema.SIMULATED_SAMPLES: (100 + seed) * (i + 1),
            schema.WALL_CLOCK_S: 1.0 * (i + 1),
            schema.RENDER_WALL_CLOCK_S: 0.5 * (i + 1),
            schema.OBJECTIVE_EVALUATIONS: i + 1,
            schema.MODEL_STEPS: 10 * (i + 1),
            schema.HVP_COUNT: 0,
            schema.VAL_LOSS: 1 - v,
            schema.VAL_ACCURACY: v,
            schema.TEST_LOSS: 1 - v,
            schema.TEST_ACCURACY: v,
            schema.PSI: {},
        }
        for i, v in enumerate(values)
    ]
    return {"curve": curve, "scoring": "method", "elapsed_s": 1.0}


def test_merging_per_seed_folders_equals_one_run_over_all_seeds(tmp_path):
    """One process per seed, then --merge: the same summaries as one run over every seed."""
    target = Target(ACCURACY, 0.9)
    per_seed = {
        0: {
            "autosimulate": synthetic_run([0.5, 0.95], 0),
            "learning_to_simulate": synthetic_run([0.5] * 8 + [0.92], 0),
        },
        1: {"autosimulate": synthetic_run([0.91], 1), "learning_to_simulate": synthetic_run([0.5] * 20, 1)},
        2: {
            "autosimulate": synthetic_run([0.5, 0.6, 0.93], 2),
            "learning_to_simulate": synthetic_run([0.5] * 4 + [0.97], 2),
        },
    }
    folders = []
    for seed, runs in per_seed.items():
        folders.append(str(tmp_path / f"seed{seed}"))
        config = f"# Parameters for run_comparison:\nrun_comparison.seeds = ({seed},)\nrun_method.max_samples = 400\n"
        write_comparison(folders[-1], {m: [r] for m, r in runs.items()}, [seed], target, config)
    merged = merge_comparisons(str(tmp_path / "merged"), folders)
    together = {m: [per_seed[seed][m] for seed in per_seed] for m in per_seed[0]}
    whole = write_comparison(str(tmp_path / "whole"), together, [0, 1, 2], target, "")
    for key in ("seeds", "methods", "ratios_to_reference", "samples_to_match_final", "scoring", "target_accuracy"):
        assert merged[key] == whole[key], key
    assert merged["methods"]["learning_to_simulate"]["simulated_samples_to_target"] == 900  # seeds: 900, never, 510
    assert merged["operative_config"].endswith("run_method.max_samples = 400\n")
    on_disk = json.loads((tmp_path / "merged" / "runs.json").read_text())
    assert on_disk["seeds"] == [0, 1, 2] and len(on_disk["runs"]["autosimulate"]) == 3

    with pytest.raises(ValueError, match="repeats seeds"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], folders[0]])
    write_comparison(str(tmp_path / "other"), {"autosimulate": [per_seed[1]["autosimulate"]]}, [1], target, "")
    with pytest.raises(ValueError, match="same configuration"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], str(tmp_path / "other")])
    # Same methods, another target: not the same experiment.
    runs = {m: [r] for m, r in per_seed[1].items()}
    write_comparison(str(tmp_path / "target"), runs, [1], Target(ACCURACY, 0.8), "run_method.max_samples = 400\n")
    with pytest.raises(ValueError, match="same configuration"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], str(tmp_path / "target")])
    # Same methods and target but another budget: not the same experiment either.
    write_comparison(str(tmp_path / "budget"), runs, [1], target, "run_method.max_samples = 800\n")
    with pytest.raises(ValueError, match=r"different gin settings .*run_method\.max_samples = 800"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], str(tmp_path / "budget")])
    with pytest.raises(ValueError, match="not a finished comparison folder"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], str(tmp_path / "missing")])
