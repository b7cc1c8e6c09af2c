"""Summaries, ratios, matches and the table of a comparison, for both score directions; the psi plot's lines."""

import numpy as np
import pytest

from autosimulate_tf import results_schema as schema
from autosimulate_tf.baselines import ACCURACY, LOSS, Target
from autosimulate_tf.comparison import plots, report


def curve(values, samples_per_point=100, seconds_per_point=1.0, regression=False):
    """A run whose validation score takes `values` (accuracies; for regression, losses)."""
    points = []
    for i, value in enumerate(values):
        points.append(
            {
                schema.SIMULATED_SAMPLES: samples_per_point * (i + 1),
                schema.WALL_CLOCK_S: seconds_per_point * (i + 1),
                schema.RENDER_WALL_CLOCK_S: seconds_per_point * (i + 1) / 2,
                schema.OBJECTIVE_EVALUATIONS: i + 1,
                schema.MODEL_STEPS: 10 * (i + 1),
                schema.HVP_COUNT: 0,
                schema.VAL_LOSS: value if regression else 1 - value,
                schema.VAL_ACCURACY: None if regression else value,
                schema.TEST_LOSS: value if regression else 1 - value,
                schema.TEST_ACCURACY: None if regression else value,
                schema.PSI: {},
            }
        )
    return {"curve": points}


def test_costs_to_target_medians_and_censored_ratios():
    target = Target(ACCURACY, 0.9)
    reference = [curve([0.5, 0.95]), curve([0.5, 0.6, 0.92]), curve([0.91])]  # 200, 300, 100 samples -> median 200
    slow = [curve([0.5] * 9 + [0.95]), curve([0.5] * 20), curve([0.5] * 4 + [0.9])]  # 1000, never, 500 -> median 1000
    never = [curve([0.5] * 30), curve([0.5] * 30), curve([0.95])]  # median is a never-reached run
    summaries = {
        name: report.summarize_method(runs, target)
        for name, runs in (("autosimulate", reference), ("slow", slow), ("never", never))
    }
    assert summaries["autosimulate"]["simulated_samples_to_target"] == 200
    assert summaries["autosimulate"]["wall_clock_s_to_target"] == 2.0
    assert summaries["autosimulate"]["objective_evaluations_to_target"] == 2
    assert summaries["slow"]["simulated_samples_to_target"] == 1000
    assert summaries["slow"]["fraction_reaching_target"] == pytest.approx(2 / 3)
    assert summaries["slow"]["total_simulated_samples"] == 1000 and summaries["slow"]["total_hvp_count"] == 0
    assert summaries["never"]["simulated_samples_to_target"] is None
    assert summaries["never"]["simulated_samples_to_target_lower_bound"] == 3000
    ratios = report.ratios_to_reference(summaries, "autosimulate")
    assert ratios["slow"]["simulated_samples_to_target"] == pytest.approx(5.0)
    assert ratios["never"]["simulated_samples_to_target"] == ">= 15"
    # "slow" ends at 0.95, 0.5, 0.9 (median 0.9): the reference reaches 0.9 after 200, 300, 100 samples.
    match = report.samples_to_match_final({"autosimulate": reference, "slow": slow}, "autosimulate", ACCURACY)["slow"]
    assert match == {
        "target_val_accuracy": 0.9,
        "reference_simulated_samples": 200,
        "method_simulated_samples": 1000,
        "ratio": pytest.approx(5.0),
    }
    # After 2 evaluations: reference runs have 0.95, 0.6, 0.91 (median 0.91); "slow" has 0.5 everywhere.
    # The third reference run stopped after 1 evaluation (at the target): its last value counts.
    assert report.score_at_evaluations(reference, 2, ACCURACY) == pytest.approx(0.91)
    assert report.score_at_evaluations(reference[:2], 2, ACCURACY) == pytest.approx(0.775)
    assert report.score_at_evaluations(reference, 0, ACCURACY) is None
    assert report.score_at_evaluations(slow, 2, ACCURACY) == 0.5


def test_regression_ranks_by_loss_downwards_and_has_no_accuracies():
    target = Target(LOSS, 0.1)
    reference = [curve([0.5, 0.08], regression=True), curve([0.5, 0.3, 0.1], regression=True)]  # 200, 300
    slow = [curve([0.5] * 4 + [0.05], regression=True), curve([0.5] * 6, regression=True)]  # 500, never
    summaries = {
        "autosimulate": report.summarize_method(reference, target),
        "slow": report.summarize_method(slow, target),
    }
    assert summaries["autosimulate"]["simulated_samples_to_target"] == 250
    assert summaries["slow"]["simulated_samples_to_target"] is None  # median of 500 and never
    assert summaries["slow"]["simulated_samples_to_target_lower_bound"] == 550
    assert summaries["autosimulate"]["final_val_loss"] == pytest.approx(0.09)
    assert summaries["autosimulate"]["final_val_accuracy"] is None
    assert summaries["autosimulate"]["final_test_accuracy"] is None
    assert report.first_reaching(reference[1]["curve"], target) is reference[1]["curve"][2]  # <= counts
    # "slow" ends at 0.05 and 0.5 (median 0.275): the reference is there after 200 and 300 samples.
    match = report.samples_to_match_final({"autosimulate": reference, "slow": slow}, "autosimulate", LOSS)["slow"]
    assert match["target_val_loss"] == pytest.approx(0.275)
    assert match["reference_simulated_samples"] == 250 and match["method_simulated_samples"] is None
    assert report.score_at_evaluations(reference, 2, LOSS) == pytest.approx(0.19)
    table = report.format_table(summaries, report.ratios_to_reference(summaries, "autosimulate"), target)
    assert table.splitlines()[0] == "Target: validation loss <= 0.1"
    assert table.splitlines()[-2].split()[5:7] == ["0.09", "0.09"]  # final val, final test losses


def test_table_shows_missing_ratios_as_n_a_in_their_own_columns():
    never = [curve([0.5] * 3)]
    target = Target(ACCURACY, 0.9)
    summaries = {name: report.summarize_method(never, target) for name in ("reference", "other")}
    ratios = report.ratios_to_reference(summaries, "reference")
    lines = report.format_table(summaries, ratios, target).splitlines()
    assert lines[0] == "Target: validation accuracy >= 0.9"
    assert lines[-1].split()[-2:] == ["n/a", "n/a"], lines[-1]


def test_psi_lines_label_each_component_or_each_factor():
    few = [{schema.PSI: {"input_mean": 0.1 * i, "weights": [[i, 2 * i], [3 * i, 4 * i]]}} for i in range(3)]
    lines = plots.psi_lines(few)
    assert [label for _, label, _ in lines] == [
        "input_mean",
        "weights[0, 0]",
        "weights[0, 1]",
        "weights[1, 0]",
        "weights[1, 1]",
    ]
    np.testing.assert_allclose(lines[3][2], [0, 3, 6])
    many = [{schema.PSI: {"means": np.full((4, 2), i).tolist(), "scale": [i, i, i]}} for i in range(2)]
    lines = plots.psi_lines(many)
    assert len(lines) == 11
    assert [label for _, label, _ in lines if label] == ["means", "scale"]
    assert [factor for factor, _, _ in lines] == ["means"] * 8 + ["scale"] * 3


def test_psi_plot_with_many_factors_shares_one_legend_below_the_panels(tmp_path):
    from PIL import Image

    def runs(num_factors):
        curve = [
            {
                schema.SIMULATED_SAMPLES: 100 * (i + 1),
                schema.PSI: {f"factor_{j}": 0.1 * i * j for j in range(num_factors)},
            }
            for i in range(3)
        ]
        return {"autosimulate": [{"curve": curve}], "learning_to_simulate": [{"curve": curve}]}

    (tmp_path / "few").mkdir()
    (tmp_path / "many").mkdir()
    few = Image.open(plots.plot_psi_trajectories(str(tmp_path / "few"), runs(3)))
    many = Image.open(plots.plot_psi_trajectories(str(tmp_path / "many"), runs(22)))
    # Legends inside the panels keep the plain 4-inch height; 22 entries in 6 columns add 4 legend
    # rows of 0.22 inch below the panels (to a pixel of rounding).
    assert abs(many.size[1] - few.size[1] * (4.0 + 4 * 0.22) / 4.0) <= 1
    assert few.size[0] == many.size[0]
