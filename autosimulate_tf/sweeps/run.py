"""One sweep from start to end: define, check, record, run the unfinished trials, summarise.

    run_sweep(root_dir, gin_files=["toy_gmm.gin"], sweep_lines=["NUM_SAMPLES=[50, 200]"], seeds=[0, 1])

Everything that can be wrong with the definition (a malformed line, a binding gin does not
know, a value it cannot parse, a different sweep already in `root_dir`) raises before any
trial starts. A re-run skips finished trials and runs the others again: the train binary
resumes an interrupted trial from its checkpoint (a compare trial starts over: comparisons
keep no checkpoints); failed trials are retried unless `retry_failed=False`.
"""

import dataclasses
import os

from autosimulate_tf import configs
from autosimulate_tf.errors import ConfigError, check
from autosimulate_tf.sweeps import hparams, local, ray_tune, results, spec, trial_runner, trials, validation


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How the trials run and are summarised; a re-run may change these freely."""

    backend: str = "local"  # 'local' child processes, or 'ray' (Ray Tune)
    parallel: int | None = None  # trials at once; local default 1, Ray default: as resources allow
    ray_address: str | None = None  # 'auto': a running cluster; None: a local Ray instance
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    retry_failed: bool = True
    metric: str | None = None  # default: results.default_metric
    metric_mode: str = "auto"  # 'max', 'min' or 'auto' (results.higher_is_better)


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    """What a sweep run left: every trial's row, whether it was interrupted, the printed table."""

    rows: list
    interrupted: bool
    table: str

    def count(self, status: str) -> int:
        """How many trials have `status`."""
        return sum(row["status"] == status for row in self.rows)


def _read_sweep_file(path: str | None) -> tuple[str | None, str]:
    if path is None:
        return None, "sweep file"
    try:
        with open(path) as f:
            return f.read(), os.path.basename(path)
    except OSError as error:
        raise ConfigError(f"--sweep_file={path} cannot be read: {error}") from error


def _job(trial: trials.Trial, root_dir: str, entry_point: str, gin: dict, seed_binding) -> trial_runner.TrialJob:
    return trial_runner.TrialJob(
        index=trial.index,
        name=trial.name,
        folder=os.path.join(os.path.abspath(root_dir), trial.name),
        entry_point=entry_point,
        gin_files=gin["files"],
        gin_search_paths=gin["search_paths"],
        gin_bindings=(*gin["bindings"], *trial.gin_bindings(seed_binding or "")),
        swept=trial.bindings,
        seed=trial.seed,
    )


def _resolved_gin(gin_files, gin_bindings, gin_search_paths) -> dict:
    """Absolute paths: a trial may run in another working directory (Ray changes it)."""
    search_paths = tuple(os.path.abspath(path) for path in gin_search_paths)
    folders = [*search_paths, configs.gin_dir()]
    try:
        files = tuple(os.path.abspath(configs.resolve_gin_file(name, folders)) for name in gin_files)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from error
    return {"files": files, "search_paths": search_paths, "bindings": tuple(gin_bindings)}


def _to_run(jobs, retry_failed: bool) -> list:
    """The jobs a run starts: all but the finished ones (and the failed ones unless retried)."""
    selected = []
    for job in jobs:
        record = trial_runner.read_record(job.folder)
        if trial_runner.still_running(record):
            raise ConfigError(
                f"Trial {job.name} is still running (pid {record['pid']}), perhaps from an earlier sweep: "
                "wait for it or stop it before re-running the sweep."
            )
        if trial_runner.is_finished(job) or (record and record["status"] == trial_runner.FAILED and not retry_failed):
            continue
        selected.append(job)
    return selected


def _run_jobs(jobs, root_dir: str, settings: RunSettings) -> bool:
    """Runs `jobs` on the chosen backend; True when the sweep was interrupted."""
    if not jobs:
        return False
    if settings.backend == "ray":
        records = ray_tune.run_ray(
            jobs, root_dir, settings.ray_address, settings.parallel, settings.cpus_per_trial, settings.gpus_per_trial
        )
        unfinished = (trial_runner.INTERRUPTED, trial_runner.RUNNING)
        return len(records) < len(jobs) or any(record["status"] in unfinished for record in records)
    _, interrupted = local.run_local(jobs, settings.parallel or 1, settings.cpus_per_trial, settings.gpus_per_trial)
    return interrupted


def run_sweep(
    root_dir: str,
    gin_files,
    gin_bindings=(),
    gin_search_paths=(),
    sweep_lines=(),
    sweep_file: str | None = None,
    seeds=(),
    entry_point: str = "train",
    seed_binding: str | None = None,
    num_random_trials: int | None = None,
    sweep_seed: int | None = None,
    settings: RunSettings = RunSettings(),
) -> SweepOutcome:
    """Runs (or continues) a sweep in `root_dir` and writes `sweep.csv`, `summary.md` and HParams data.

    Args:
      root_dir: the sweep folder: `sweep.json`, one folder per trial, the results.
      gin_files, gin_bindings, gin_search_paths: the configuration every trial shares.
      sweep_lines: `BINDING=[v1, v2, ...]` (or random) lines; see `sweeps/spec.py`.
      sweep_file: a file of such lines and directives.
      seeds: each grid point runs once per seed; empty: once, with the config's own seed.
      entry_point: 'train' (`train_autosimulate`) or 'compare' (`run_comparison`).
      seed_binding: how a seed is bound (`{seed}` marks it; a bare name `X` means
        `X = {seed}`); default `SEED = {seed}` (train), `run_comparison.seeds = ({seed},)` (compare).
      num_random_trials, sweep_seed: random draws and their seed (override the sweep file's).
      settings: backend, parallelism, resources, retry and metric (`RunSettings`).

    Returns:
      The `SweepOutcome`.

    Raises:
      ConfigError: a problem with the definition, before any trial starts.
    """
    check(entry_point in trial_runner.ENTRY_POINTS, f"--entry_point={entry_point}: one of train, compare.")
    check(settings.backend in ("local", "ray"), f"--backend={settings.backend}: one of local, ray.")
    if settings.backend == "ray":
        ray_tune.import_ray_tune()  # A missing extra fails now, not after the checks.
    text, file_name = _read_sweep_file(sweep_file)
    sweep_spec = spec.parse_spec(sweep_lines, text, file_name)
    check(bool(sweep_spec.names) or bool(seeds), "Nothing to sweep: give --sweep, --sweep_file or --seeds.")
    num_random_trials = num_random_trials if num_random_trials is not None else sweep_spec.num_random_trials
    sweep_seed = sweep_seed if sweep_seed is not None else (sweep_spec.sweep_seed or 0)
    check(seed_binding is None or bool(seeds), "--seed_binding is set but --seeds is not: no seed to bind.")
    seed_binding = (seed_binding or trials.DEFAULT_SEED_BINDINGS[entry_point]) if seeds else None
    expanded = trials.expand_trials(sweep_spec, seeds, num_random_trials, sweep_seed)
    validation.validate_sweep(gin_files, gin_bindings, gin_search_paths, expanded, seed_binding)
    definition = trials.definition_json(
        sweep_spec,
        entry_point=entry_point,
        gin_files=list(gin_files),
        gin_bindings=list(gin_bindings),
        gin_search_paths=list(gin_search_paths),
        seeds=list(seeds),
        seed_binding=seed_binding,
        num_random_trials=num_random_trials if sweep_spec.random else None,
        sweep_seed=sweep_seed if sweep_spec.random else None,
    )
    recorded = trials.load_or_record(root_dir, definition, expanded)
    gin = _resolved_gin(gin_files, gin_bindings, gin_search_paths)
    jobs = [_job(trial, root_dir, entry_point, gin, seed_binding) for trial in recorded]
    to_run = _to_run(jobs, settings.retry_failed)
    print(f"Sweep in {root_dir}: {len(jobs)} trials, {len(jobs) - len(to_run)} done before, {len(to_run)} to run.")
    interrupted = _run_jobs(to_run, root_dir, settings)
    return _summarise(root_dir, recorded, jobs, sweep_spec.names, entry_point, settings, interrupted)


def _summarise(root_dir, recorded, jobs, swept_names, entry_point, settings, interrupted) -> SweepOutcome:
    """Rows, `sweep.csv`, `summary.md` and HParams from every trial's folder; prints the table."""
    rows = [
        results.trial_row(trial, job, trial_runner.read_record(job.folder))
        for trial, job in zip(recorded, jobs, strict=True)
    ]
    metric = settings.metric or results.default_metric(entry_point, rows)
    higher_first = results.higher_is_better(metric, settings.metric_mode)
    table = results.write_results(root_dir, rows, swept_names, metric, higher_first)
    log_dir = hparams.write_hparams(root_dir, rows, swept_names)
    outcome = SweepOutcome(rows, interrupted, table)
    print(table)
    finished = [row for row in rows if row["status"] == "finished"]
    if finished and not any(isinstance(row.get(metric), int | float) for row in finished):
        known = sorted(key for key, value in finished[0].items() if isinstance(value, int | float))
        print(f"No finished trial reports the metric {metric!r}; numeric results: {', '.join(known)}.")
    for row in rows:
        if row["status"] == "failed":
            print(f"FAILED {row['trial']} (exit {row['return_code']}): {row['error']} (log: {row['folder']}/log.txt)")
    counts = ", ".join(
        f"{outcome.count(s)} {s}" for s in ("finished", "failed", "interrupted", "pending") if outcome.count(s)
    )
    print(f"{counts}. Results: {os.path.join(root_dir, results.CSV_FILE)}; tensorboard --logdir={log_dir}")
    return outcome
