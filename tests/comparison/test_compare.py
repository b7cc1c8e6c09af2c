"""compare.py on a tiny budget: structure and accounting of comparison.json (not the ratios)."""

import json
import os

import gin
import pytest

from autosimulate_tf import configs
from autosimulate_tf.comparison import merge_comparisons, report, run_comparison
from autosimulate_tf.comparison.referee import Referee
from autosimulate_tf.comparison.runners import run_method
from autosimulate_tf.train.trainer import AutoSimulateTrainer

COMPARE_FILES = [path for path in configs.shipped_gin_files() if os.path.basename(path).startswith("compare_")]
M = 100  # samples per baseline evaluation
STEPS = 20  # training steps per baseline evaluation
N = 40  # AutoSimulate samples per outer iteration
TINY = [
    "run_comparison.seeds = (0, 1)",
    "run_comparison.target_accuracy = 0.55",
    "run_method.max_samples = 400",
    "run_method.max_outer_iterations = 3",
    "run_method.stop_at_target = False",
    f"ScratchTrainingEvaluator.num_samples = {M}",
    f"ScratchTrainingEvaluator.num_steps = {STEPS}",
    f"AutoSimulateTrainer.num_samples = {N}",
    "AutoSimulateTrainer.num_initial_inner_steps = 10",
    "AutoSimulateTrainer.num_inner_steps = 5",
    "LearningToSimulate.num_policy_samples = 2",
    "train_autosimulate.final_training = False",
    "train_autosimulate.real_data_reference = False",
    "SlowRenderSimulator.work_ms = 0.5",  # compare_gmm_render_cost.gin: keep the timed suite short
    # The *_referee.gin configs: a referee as small as a baseline evaluation.
    f"referee/ScratchTrainingEvaluator.num_samples = {M}",
    f"referee/ScratchTrainingEvaluator.num_steps = {STEPS}",
]


def test_shipped_compare_configs_exist():
    assert {os.path.basename(path) for path in COMPARE_FILES} >= {
        "compare_gmm.gin",
        "compare_pools.gin",
        "compare_digits.gin",
    }


@pytest.mark.parametrize("gin_path", COMPARE_FILES, ids=os.path.basename)
def test_tiny_comparison_writes_consistent_accounting(gin_path, tmp_path):
    gin.clear_config()
    configs.parse_gin([gin_path], TINY)
    comparison = run_comparison(root_dir=str(tmp_path))
    on_disk = json.loads((tmp_path / "comparison.json").read_text())
    runs = json.loads((tmp_path / "runs.json").read_text())["runs"]
    # Every config runs the four standard methods; compare_gmm*.gin add Bayesian optimisation.
    methods = set(gin.query_parameter("run_comparison.methods"))
    assert methods >= {"autosimulate", "learning_to_simulate", "random_search", "default"}
    assert ("bayesian_optimization" in methods) == os.path.basename(gin_path).startswith("compare_gmm")
    assert set(on_disk["methods"]) == methods
    assert on_disk["reference"] == "autosimulate"
    assert set(on_disk["ratios_to_reference"]) == methods - {"autosimulate"}
    for method, summary in on_disk["methods"].items():
        for key in (
            "samples_to_target",
            "time_to_target_s",
            "objective_evals_to_target",
            "final_val_accuracy",
            "final_test_accuracy",
            "fraction_reaching_target",
        ):
            assert key in summary, (method, key)
        assert len(summary["seeds"]) == 2
        assert 0.0 <= summary["final_test_accuracy"] <= 1.0

    # AutoSimulate: N samples, one objective evaluation and >= 1 HVP per outer iteration; capped at 3 iterations.
    for run in runs["autosimulate"]:
        for index, point in enumerate(run["curve"], start=1):
            assert point["samples"] == N * index
            assert point["objective_evaluations"] == index
            assert point["model_steps"] == 10 + 5 * (index - 1)
            assert point["hvps"] >= 2 * index
        assert len(run["curve"]) == 3
        assert 0.0 < run["hypergradient_overhead_fraction"] < 1.0

    # Matching each baseline's final accuracy: the baseline needs at most what it spent.
    for method, match in on_disk["samples_to_match_final"].items():
        if match["method_samples"] is not None:
            assert match["method_samples"] <= on_disk["methods"][method]["total_samples"]

    # Search baselines: every evaluation costs M samples and STEPS steps, no HVPs; they stop at the sample budget.
    for method in methods - {"autosimulate", "default"}:
        for run in runs[method]:
            for index, point in enumerate(run["curve"], start=1):
                assert point["samples"] == M * index
                assert point["model_steps"] == STEPS * index
                assert point["objective_evaluations"] == index
                assert point["hvps"] == 0
            assert run["curve"][-1]["samples"] == 400
            # Their own best-so-far score never decreases (under a referee it is kept beside the referee's).
            own = "method_val_accuracy" if on_disk["scoring"] == "referee" else "val_accuracy"
            accuracies = [point[own] for point in run["curve"]]
            assert accuracies == sorted(accuracies)
    for run in runs["default"]:
        assert len(run["curve"]) == 1 and run["curve"][0]["samples"] == M
    if on_disk["scoring"] == "referee":
        # Every point says which point's psi its score came from; a run's final score is its own.
        for method_runs in runs.values():
            for run in method_runs:
                assert all(p["referee_samples"] <= p["samples"] for p in run["curve"])
                assert run["curve"][-1]["referee_samples"] == run["curve"][-1]["samples"]

    for name in ("accuracy_vs_samples.png", "accuracy_vs_time.png", "psi_trajectories.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert "autosimulate" in (tmp_path / "table.txt").read_text()
    assert comparison["methods"] == on_disk["methods"]
    assert "accuracy_at_reference_evaluations" in on_disk
    assert set(on_disk["samples_to_match_final"]) == methods - {"autosimulate"}


def curve(values, samples_per_point=100, seconds_per_point=1.0):
    return {
        "curve": [
            {
                "samples": samples_per_point * (i + 1),
                "time_s": seconds_per_point * (i + 1),
                "objective_evaluations": i + 1,
                "model_steps": 10 * (i + 1),
                "hvps": 0,
                "val_accuracy": v,
                "test_accuracy": v,
                "psi": {},
            }
            for i, v in enumerate(values)
        ]
    }


def test_costs_to_target_medians_and_censored_ratios():
    target = 0.9
    reference = [curve([0.5, 0.95]), curve([0.5, 0.6, 0.92]), curve([0.91])]  # 200, 300, 100 samples -> median 200
    slow = [curve([0.5] * 9 + [0.95]), curve([0.5] * 20), curve([0.5] * 4 + [0.9])]  # 1000, never, 500 -> median 1000
    never = [curve([0.5] * 30), curve([0.5] * 30), curve([0.95])]  # median is a never-reached run
    summaries = {
        name: report.summarize_method(runs, target)
        for name, runs in (("autosimulate", reference), ("slow", slow), ("never", never))
    }
    assert summaries["autosimulate"]["samples_to_target"] == 200
    assert summaries["slow"]["samples_to_target"] == 1000
    assert summaries["slow"]["fraction_reaching_target"] == pytest.approx(2 / 3)
    assert summaries["never"]["samples_to_target"] is None
    assert summaries["never"]["samples_to_target_lower_bound"] == 3000
    ratios = report.ratios_to_reference(summaries, "autosimulate")
    assert ratios["slow"]["samples_to_target"] == pytest.approx(5.0)
    assert ratios["never"]["samples_to_target"] == ">= 15"
    # "slow" ends at 0.95, 0.5, 0.9 (median 0.9): the reference reaches 0.9 after 200, 300, 100 samples.
    match = report.samples_to_match_final({"autosimulate": reference, "slow": slow}, "autosimulate")["slow"]
    assert match["target_val_accuracy"] == 0.9
    assert match["reference_samples"] == 200
    assert match["method_samples"] == 1000
    assert match["ratio"] == pytest.approx(5.0)
    # After 2 evaluations: reference runs have 0.95, 0.6, 0.91 (median 0.91); "slow" has 0.5 everywhere.
    # The third reference run stopped after 1 evaluation (at the target): its last value counts.
    assert report.accuracy_at_evaluations(reference, 2) == pytest.approx(0.91)
    assert report.accuracy_at_evaluations(reference[:2], 2) == pytest.approx(0.775)
    assert report.accuracy_at_evaluations(reference, 0) is None
    assert report.accuracy_at_evaluations(slow, 2) == 0.5


def test_referee_rescores_every_point_without_changing_any_method(tmp_path):
    """scoring='referee': same trajectories and costs, accuracies from one fresh-model rule."""
    gmm = [path for path in COMPARE_FILES if os.path.basename(path) == "compare_gmm.gin"]
    tiny = [*TINY, "run_comparison.seeds = (0,)", "run_method.max_samples = 300"]
    referee_budget = [
        "referee/ScratchTrainingEvaluator.num_samples = 150",
        "referee/ScratchTrainingEvaluator.num_steps = 30",
    ]
    runs = {}
    for scoring in ("method", "referee"):
        gin.clear_config()
        configs.parse_gin(gmm, [*tiny, *referee_budget, f"run_method.scoring = '{scoring}'"])
        comparison = run_comparison(root_dir=str(tmp_path / scoring))
        assert comparison["scoring"] == scoring
        runs[scoring] = json.loads((tmp_path / scoring / "runs.json").read_text())["runs"]

    referee_scores = {}
    for method, method_runs in runs["method"].items():
        own, refereed = method_runs[0]["curve"], runs["referee"][method][0]["curve"]
        assert len(own) == len(refereed)
        for before, after in zip(own, refereed, strict=True):
            # The referee is reporting only: the method moves, spends and scores itself exactly as before.
            for key in ("samples", "objective_evaluations", "model_steps", "hvps", "psi"):
                assert after[key] == before[key], (method, key)
            assert after["method_val_accuracy"] == before["val_accuracy"]
            assert after["method_test_accuracy"] == before["test_accuracy"]
            # One rule for all: the same psi gets the same score, whichever method proposed it.
            key = json.dumps(after["psi"], sort_keys=True)
            referee_scores.setdefault(key, after["val_accuracy"])
            assert after["val_accuracy"] == referee_scores[key], method
    # LTS's first point is its policy mean before any update, the initial psi: the default's score.
    default_point = runs["referee"]["default"][0]["curve"][0]
    lts_first = runs["referee"]["learning_to_simulate"][0]["curve"][0]
    assert lts_first["psi"] == default_point["psi"] and lts_first["val_accuracy"] == default_point["val_accuracy"]
    assert len(referee_scores) > 3  # AutoSimulate, LTS and random search visited other psi
    assert any(
        point["val_accuracy"] != point["method_val_accuracy"]
        for method_runs in runs["referee"].values()
        for point in method_runs[0]["curve"]
    )

    # The score is a fresh model on that psi: re-derive one point with a new referee.
    gin.clear_config()
    configs.parse_gin(gmm, [*tiny, *referee_budget])
    point = dict(runs["referee"]["autosimulate"][0]["curve"][-1])
    expected = point["val_accuracy"]
    referee = Referee(AutoSimulateTrainer(seed=0).problem(), seed=0)
    assert referee.evaluator.num_samples == 150 and referee.evaluator.num_steps == 30
    point["val_accuracy"] = point["test_accuracy"] = -1.0
    referee.score(point)
    assert point["val_accuracy"] == pytest.approx(expected)


def test_referee_every_samples_thins_rescoring_and_keeps_the_last_point_fresh(monkeypatch):
    """Points between rescorings carry the last score; crossings are seen at rescored points only."""
    gmm = [path for path in COMPARE_FILES if os.path.basename(path) == "compare_gmm.gin"]
    gin.clear_config()
    configs.parse_gin(gmm, TINY)
    referee = Referee(AutoSimulateTrainer(seed=0).problem(), seed=0, every_samples=100)
    scored = []

    def fake_evaluate(psi):  # Stands in for the fresh-model training; records which psi it saw.
        scored.append(psi["step"])
        return {"val_accuracy": psi["step"] / 10, "test_accuracy": psi["step"] / 20}

    monkeypatch.setattr(referee, "_evaluate", fake_evaluate)
    curve = []
    for step, samples in enumerate([40, 80, 120, 160, 200, 240, 280, 310]):
        curve.append({"samples": samples, "psi": {"step": step}, "val_accuracy": 0.0, "test_accuracy": 0.0})
        referee.score(curve[-1])
    # Rescored at 40, then once >= 100 more samples had been simulated: 160, 280.
    assert scored == [0, 3, 6]
    assert [point["referee_samples"] for point in curve] == [40, 40, 40, 160, 160, 160, 280, 280]
    assert [point["val_accuracy"] for point in curve] == [0.0, 0.0, 0.0, 0.3, 0.3, 0.3, 0.6, 0.6]
    assert all(point["method_val_accuracy"] == 0.0 for point in curve)
    referee.finish(curve)  # The last point carried 280's score: it is rescored on its own psi.
    assert scored == [0, 3, 6, 7]
    assert curve[-1]["val_accuracy"] == 0.7 and curve[-1]["referee_samples"] == 310
    referee.finish(curve)  # Already fresh: nothing more.
    assert scored == [0, 3, 6, 7]

    with pytest.raises(ValueError, match=r"referee_every_samples=-1"):
        Referee(AutoSimulateTrainer(seed=0).problem(), seed=0, every_samples=-1)
    with pytest.raises(ValueError, match=r"referee_every_samples=100 needs run_method\.scoring = 'referee'"):
        run_method("default", 0, 0.9, referee_every_samples=100)


def test_merging_per_seed_folders_equals_one_run_over_all_seeds(tmp_path):
    """One process per seed, then --merge: the same summaries as one run over every seed."""
    from autosimulate_tf.comparison.compare import write_comparison

    def run(values, seed):
        return {**curve(values, samples_per_point=100 + seed), "scoring": "method", "wall_clock_s": 1.0}

    per_seed = {
        0: {"autosimulate": run([0.5, 0.95], 0), "learning_to_simulate": run([0.5] * 8 + [0.92], 0)},
        1: {"autosimulate": run([0.91], 1), "learning_to_simulate": run([0.5] * 20, 1)},
        2: {"autosimulate": run([0.5, 0.6, 0.93], 2), "learning_to_simulate": run([0.5] * 4 + [0.97], 2)},
    }
    folders = []
    for seed, runs in per_seed.items():
        folders.append(str(tmp_path / f"seed{seed}"))
        config = f"# Parameters for run_comparison:\nrun_comparison.seeds = ({seed},)\nrun_method.max_samples = 400\n"
        write_comparison(folders[-1], {m: [r] for m, r in runs.items()}, [seed], 0.9, config)
    merged = merge_comparisons(str(tmp_path / "merged"), folders)
    together = {m: [per_seed[seed][m] for seed in per_seed] for m in per_seed[0]}
    whole = write_comparison(str(tmp_path / "whole"), together, [0, 1, 2], 0.9, "")
    for key in ("seeds", "methods", "ratios_to_reference", "samples_to_match_final", "scoring"):
        assert merged[key] == whole[key], key
    assert merged["methods"]["learning_to_simulate"]["samples_to_target"] == 900  # seeds: 900, never, 510
    assert merged["operative_config"].endswith("run_method.max_samples = 400\n")
    on_disk = json.loads((tmp_path / "merged" / "runs.json").read_text())
    assert on_disk["seeds"] == [0, 1, 2] and len(on_disk["runs"]["autosimulate"]) == 3

    with pytest.raises(ValueError, match="repeats seeds"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], folders[0]])
    write_comparison(str(tmp_path / "other"), {"autosimulate": [per_seed[1]["autosimulate"]]}, [1], 0.9, "")
    with pytest.raises(ValueError, match="same configuration"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], str(tmp_path / "other")])
    # Same methods and target but another budget: not the same experiment either.
    runs = {m: [r] for m, r in per_seed[1].items()}
    write_comparison(str(tmp_path / "budget"), runs, [1], 0.9, "run_method.max_samples = 800\n")
    with pytest.raises(ValueError, match=r"different gin settings .*run_method\.max_samples = 800"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], str(tmp_path / "budget")])
    with pytest.raises(ValueError, match="not a finished comparison folder"):
        merge_comparisons(str(tmp_path / "again"), [folders[0], str(tmp_path / "missing")])


def test_unknown_scoring_is_refused():
    with pytest.raises(ValueError, match=r"run_method\.scoring='best'"):
        run_method("default", 0, 0.9, scoring="best")


def test_table_shows_missing_ratios_as_n_a_in_their_own_columns():
    never = [curve([0.5] * 3)]
    summaries = {name: report.summarize_method(never, 0.9) for name in ("reference", "other")}
    ratios = report.ratios_to_reference(summaries, "reference")
    row = report.format_table(summaries, ratios, 0.9).splitlines()[-1]
    assert row.split()[-2:] == ["n/a", "n/a"], row
