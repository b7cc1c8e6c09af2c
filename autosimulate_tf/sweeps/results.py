"""The sweep's results: one row per trial (`sweep.csv`) and a table over seeds (`summary.md`).

A row holds the trial's name, every swept binding (its gin text), the seed, the folder,
the status (`finished`, `failed`, `interrupted`, or `pending` for a trial not started yet),
the return code, how a failure ended (`trial_runner.error_summary`), and every scalar of the trial's results:

- train: the scalars of `results.json` (`results_schema`: `val_accuracy`, `val_loss`,
  `test_accuracy`, ...), nested dicts flattened one level (`final_model.test_accuracy`,
  `final_psi.input_mean` for a scalar psi component); lists are left out.
- compare: `comparison.json`'s scalars (`score`, `reference`, the target) and every
  method's summary as `<method>.<key>` (`autosimulate.final_val_accuracy`,
  `learning_to_simulate.samples_to_target`, ...), ratios to the reference as
  `ratio.<method>.<key>`.

The table groups trials by their swept bindings and shows the median, min and max over
seeds of one metric, best first. The default metric is the final validation accuracy, or the
validation loss when the problem is a regression (accuracies are null): `val_accuracy` /
`val_loss` for train, `<reference>.final_val_accuracy` / `..._loss` for compare.
Accuracies and fractions rank higher-first, anything else (losses, costs) lower-first.
"""

import csv
import json
import os
import statistics

PENDING = "pending"
CSV_FILE = "sweep.csv"
SUMMARY_FILE = "summary.md"
_LEFT_OUT = ("operative_config",)  # a whole config: not a scalar worth a column


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def flatten_scalars(results: dict, entry_point: str) -> dict:
    """The scalars of a trial's `results.json` (train) or `comparison.json` (compare), as described above."""
    scalars = {key: value for key, value in results.items() if _is_scalar(value) and key not in _LEFT_OUT}
    if entry_point == "compare":
        for method, summary in (results.get("methods") or {}).items():
            scalars.update({f"{method}.{key}": value for key, value in summary.items() if _is_scalar(value)})
        for method, ratios in (results.get("ratios_to_reference") or {}).items():
            scalars.update({f"ratio.{method}.{key}": value for key, value in ratios.items() if _is_scalar(value)})
        return scalars
    for key, value in results.items():
        if isinstance(value, dict):
            scalars.update({f"{key}.{inner}": item for inner, item in value.items() if _is_scalar(item)})
    return scalars


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def trial_row(trial, job, record: dict | None) -> dict:
    """The `sweep.csv` row of one trial (a `trials.Trial` and its `trial_runner.TrialJob`)."""
    row = {"trial": trial.name, **trial.bindings, "seed": trial.seed, "folder": job.folder}
    status = record["status"] if record else PENDING
    row.update(status=status, return_code=record.get("return_code") if record else None)
    row["error"] = (record or {}).get("error")
    results = _read_json(job.results_path) if status == "finished" else None
    if results:
        row.update(flatten_scalars(results, job.entry_point))
    return row


def write_csv(path: str, rows: list[dict]) -> None:
    """Writes the rows; columns are the union of the rows' keys, in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})


def default_metric(entry_point: str, rows: list[dict]) -> str:
    """The final validation accuracy, or the validation loss where accuracies are null (regression)."""
    finished = [row for row in rows if row["status"] == "finished"]
    if entry_point == "compare":
        if not finished:
            return "autosimulate.final_val_accuracy"
        return f"{finished[0]['reference']}.final_{finished[0]['score']}"
    has_accuracy = any(row.get("val_accuracy") is not None for row in finished)
    return "val_accuracy" if has_accuracy or not finished else "val_loss"


def higher_is_better(metric: str, mode: str = "auto") -> bool:
    """`mode` `max` / `min`, or `auto`: accuracies and fractions higher-first, the rest lower-first."""
    if mode != "auto":
        return mode == "max"
    name = metric.rsplit(".", 1)[-1]
    return "accuracy" in name or "fraction" in name


def _show(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def summary_table(rows: list[dict], swept_names: list[str], metric: str, higher_first: bool) -> str:
    """A Markdown table: one line per grid point, median / min / max of `metric` over seeds, best first."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row.get(name) for name in swept_names), []).append(row)
    lines_with_medians = []
    for key, group in groups.items():
        values = [row[metric] for row in group if isinstance(row.get(metric), int | float)]
        median = statistics.median(values) if values else None
        cells = [*key, _show(median), _show(min(values, default=None)), _show(max(values, default=None))]
        statuses = [row["status"] for row in group]
        cells.append(f"{statuses.count('finished')}/{len(group)}")
        lines_with_medians.append((median, "| " + " | ".join(str(cell) for cell in cells) + " |"))
    # Best first; grid points without a value for the metric (nothing finished) last.
    lines_with_medians.sort(key=lambda item: (item[0] is None, -(item[0] or 0) if higher_first else (item[0] or 0)))
    header = [*swept_names, f"{metric} median", "min", "max", "finished"]
    direction = "higher" if higher_first else "lower"
    return "\n".join(
        [
            f"{metric} over seeds, per grid point ({direction} is better):",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *(line for _, line in lines_with_medians),
        ]
    )


def write_results(root_dir: str, rows: list[dict], swept_names: list[str], metric: str, higher_first: bool) -> str:
    """Writes `sweep.csv` and `summary.md` into `root_dir`; returns the table."""
    write_csv(os.path.join(root_dir, CSV_FILE), rows)
    table = summary_table(rows, swept_names, metric, higher_first)
    with open(os.path.join(root_dir, SUMMARY_FILE), "w") as f:
        f.write(table + "\n")
    return table
