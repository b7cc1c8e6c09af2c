"""The README's sweep command, shortened, end to end: trials, sweep.csv, the table, HParams data."""

import glob
import os
import re
import shlex

from sweep_testing import REPO, TINY_TRAINING, hparams_plugin_data, read_rows, read_trial, run_sweep_binary

from autosimulate_tf.sweeps import spec

README = os.path.join(REPO, "README.md")


def readme_sweep_command() -> list[str]:
    """The first command of the README's "Sweeps" section, as argv."""
    with open(README) as f:
        section = f.read().split("## Sweeps", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    command = block.split("\n#", 1)[0].replace("\\\n", " ")
    return shlex.split(command)


def shortened(argv: list[str], root_dir) -> list[str]:
    """The README's flags with two values of the first swept binding, one of the others, two seeds, tiny runs."""
    program, *flags = argv
    assert program == ".venv/bin/autosimulate-sweep"
    short, first_axis = [], True
    for flag in flags:
        name, _, value = flag.partition("=")
        if name == "--root_dir":
            value = str(root_dir)
        elif name == "--sweep":
            axis = spec.parse_line(value, "README")
            value = f"{axis.name}=[{', '.join(axis.values[: 2 if first_axis else 1])}]"
            first_axis = False
        elif name == "--seeds":
            value = ",".join(value.split(",")[:2])
        short.append(f"{name}={value}")
    return short + [f"--gin_bindings={binding}" for binding in TINY_TRAINING]


def test_readme_sweep_runs_shortened(tmp_path):
    flags = shortened(readme_sweep_command(), tmp_path)
    assert "--sweep=HypergradientEstimator.damping=[0.03, 0.1]" in flags and "--sweep=NUM_SAMPLES=[50]" in flags
    process = run_sweep_binary(*flags)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]

    rows = read_rows(tmp_path)
    assert [row["status"] for row in rows] == ["finished"] * 4
    assert [(row["HypergradientEstimator.damping"], row["seed"]) for row in rows] == [
        ("0.03", "0"),
        ("0.03", "1"),
        ("0.1", "0"),
        ("0.1", "1"),
    ]
    assert all(0.0 <= float(row["val_accuracy"]) <= 1.0 and row["outer_iterations"] == "2" for row in rows)
    folder = rows[3]["folder"]
    assert os.path.basename(folder) == "trial-003-damping=0.1,NUM_SAMPLES=50-seed1"
    operative = open(os.path.join(folder, "operative_config.gin")).read()
    assert "HypergradientEstimator.damping = 0.1" in operative and "SEED = 1" in operative
    assert read_trial(folder)["command"][1:3] == ["-m", "autosimulate_tf.train.launch"]

    # The table: one line per grid point, median over the two seeds, best first.
    table = open(tmp_path / "summary.md").read()
    assert table.strip() in process.stdout
    lines = [line for line in table.splitlines() if line.startswith("| 0.")]
    assert len(lines) == 2 and all(line.endswith("| 2/2 |") for line in lines)
    medians = [float(line.split("|")[3]) for line in lines]
    assert medians == sorted(medians, reverse=True)

    # TensorBoard HParams: the experiment at the top, one session per trial.
    log_dir = tmp_path / "tensorboard"
    (experiment,) = hparams_plugin_data(glob.glob(str(log_dir / "events.out.tfevents.*")))
    assert "HypergradientEstimator.damping" in {info.name for info in experiment.experiment.hparam_infos}
    assert "val_accuracy" in {info.name.tag for info in experiment.experiment.metric_infos}
    assert len(glob.glob(str(log_dir / "trial-*" / "events.out.tfevents.*"))) == 4
