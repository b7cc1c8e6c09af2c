"""Runs one trial as a child process of the train or compare binary and records how it ended.

Each trial is `python -m autosimulate_tf.train.launch --root_dir=<trial folder> ...` (or the
compare binary) with stdout and stderr in `<trial folder>/log.txt`: a crash cannot take the
sweep down, TF state never leaks between trials, and a re-run of the same command resumes
the trial from its checkpoint (a finished train run only re-reads what is done).

`<trial folder>/trial.json` holds the trial's bindings, seed, status, return code, the
command and, for a failure, how its log ends (`error_summary`). Statuses: `running` (written at the
start), `finished`, `failed`, `interrupted` (SIGINT, SIGTERM or SIGKILL: resumable).

Standard library only: Ray workers import this module to run trials, and need no TF for it.
"""

import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

FINISHED, FAILED, INTERRUPTED, RUNNING = "finished", "failed", "interrupted", "running"
TRIAL_FILE = "trial.json"
LOG_FILE = "log.txt"
# The module each entry point runs and the file a finished run leaves in its folder.
ENTRY_POINTS = {
    "train": ("autosimulate_tf.train.launch", "results.json"),
    "compare": ("autosimulate_tf.comparison.launch", "comparison.json"),
}
# What the binaries exit with when stopped: 130 after a checkpoint on SIGINT (train), or killed by a signal.
_INTERRUPTED_CODES = {130, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL}
# How the train and compare binaries start the message of a bad setting or a simulator failure.
_ERROR_PREFIXES = ("Configuration error:", "Bad gin configuration:", "Simulator failure:")
_MAX_ERROR_CHARS = 500
# The folder holding the `autosimulate_tf` package the sweep runs from: children import the
# same copy, even from a source checkout that is not installed.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class TrialJob:
    """Everything needed to start one trial; plain data, so it pickles to a Ray worker."""

    index: int
    name: str
    folder: str
    entry_point: str
    gin_files: tuple
    gin_search_paths: tuple
    gin_bindings: tuple  # fixed bindings, then the trial's swept bindings, then its seed binding
    swept: dict
    seed: int | None

    @property
    def results_path(self) -> str:
        """Where the finished run's results file lies."""
        return os.path.join(self.folder, ENTRY_POINTS[self.entry_point][1])


def command(job: TrialJob, python: str | None = None) -> list[str]:
    """The child's command line: the entry point's binary with the trial's folder and gin flags."""
    module = ENTRY_POINTS[job.entry_point][0]
    return [
        python or sys.executable,
        "-m",
        module,
        f"--root_dir={job.folder}",
        *(f"--gin_file={name}" for name in job.gin_files),
        *(f"--gin_search_path={path}" for path in job.gin_search_paths),
        *(f"--gin_bindings={line}" for line in job.gin_bindings),
    ]


def child_environment(extra=None) -> dict:
    """The sweep's environment, unbuffered output and the package importable, plus `extra`."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + path if path else "")
    environment.update(extra or {})
    return environment


def read_record(folder: str) -> dict | None:
    """The folder's `trial.json`, or None before the trial first started."""
    try:
        with open(os.path.join(folder, TRIAL_FILE)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_record(folder: str, record: dict) -> None:
    """Writes `trial.json` atomically: a sweep killed mid-write leaves the previous one."""
    temporary = os.path.join(folder, TRIAL_FILE + ".tmp")
    with open(temporary, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(temporary, os.path.join(folder, TRIAL_FILE))


def is_finished(job: TrialJob) -> bool:
    """True when the trial's record says finished and its results file is there."""
    record = read_record(job.folder)
    return bool(record) and record["status"] == FINISHED and os.path.exists(job.results_path)


def still_running(record: dict | None) -> bool:
    """True when `record` is of a trial whose process still runs on this host (e.g. an earlier sweep's)."""
    if not record or record.get("status") != RUNNING or record.get("host") != socket.gethostname():
        return False
    try:
        with open(f"/proc/{record['pid']}/cmdline", "rb") as f:
            arguments = f.read().split(b"\0")
    except OSError:
        return False
    # The pid may have been reused since: it is the trial only if it runs on the trial's folder.
    return f"--root_dir={record['folder']}".encode() in arguments


def status_for(return_code: int, results_written: bool) -> str:
    """`finished`, `interrupted` (stopped by a signal, resumable) or `failed`."""
    if return_code == 0 and results_written:
        return FINISHED
    if return_code in _INTERRUPTED_CODES:
        return INTERRUPTED
    return FAILED


def error_summary(log_path: str) -> str:
    """How a failed trial's log ends, on one line.

    The binaries print a bad setting or a simulator failure as one wrapped paragraph that
    starts with a known prefix (`Configuration error: ...`): that paragraph. Anything else ends
    in a traceback, whose last line is the exception: that line.
    """
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except FileNotFoundError:
        return ""
    starts = [index for index, line in enumerate(lines) if line.startswith(_ERROR_PREFIXES)]
    message = " ".join(lines[starts[-1] :]) if starts else (lines[-1] if lines else "")
    return message[:_MAX_ERROR_CHARS]


def cpu_environment(cpus_per_trial: float | None) -> dict:
    """Thread-count variables for a trial limited to `cpus_per_trial` cores (none when unlimited)."""
    if cpus_per_trial is None:
        return {}
    threads = str(max(1, math.ceil(cpus_per_trial)))
    return {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads, "OMP_NUM_THREADS": threads}


class RunningTrial:
    """A trial's child process, started on construction; `wait` records how it ended.

    Args:
      job: the trial.
      extra_environment: variables set for the child only (thread counts, visible GPUs).
    """

    def __init__(self, job: TrialJob, extra_environment=None):
        os.makedirs(job.folder, exist_ok=True)
        self.job = job
        argv = command(job)
        self._record = {
            "index": job.index,
            "name": job.name,
            "folder": job.folder,
            "bindings": job.swept,
            "seed": job.seed,
            "command": argv,
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        self._started = time.monotonic()
        self._log = open(os.path.join(job.folder, LOG_FILE), "a")  # Closed in `wait`, when the child ends.
        self._log.write(f"\n==== {self._record['started']} {' '.join(argv)}\n")
        self._log.flush()
        # Its own session: a Ctrl-C in the terminal reaches the sweep only, which forwards one
        # SIGINT to each trial (the train binary checkpoints on the first and stops at once on a second).
        self.process = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_environment(extra_environment),
            start_new_session=True,
        )
        write_record(job.folder, {**self._record, "status": RUNNING, "pid": self.process.pid})

    def interrupt(self) -> None:
        """Asks the child to save a checkpoint and stop (SIGINT)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def wait(self, timeout_s: float | None = None) -> dict | None:
        """Waits for the child; returns the final `trial.json` record, or None if it still runs after `timeout_s`."""
        try:
            return_code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._log.close()
        status = status_for(return_code, os.path.exists(self.job.results_path))
        record = dict(self._record, status=status, return_code=return_code)
        record["duration_s"] = round(time.monotonic() - self._started, 1)
        if status == FAILED:
            summary = error_summary(os.path.join(self.job.folder, LOG_FILE))
            no_results = f"exited 0 without writing {os.path.basename(self.job.results_path)}"
            record["error"] = no_results if return_code == 0 else summary or f"exit status {return_code}"
        write_record(self.job.folder, record)
        return record


def run_trial(job: TrialJob, extra_environment=None, on_start=None) -> dict:
    """Runs `job` to its end in a child process and returns the `trial.json` it wrote.

    Args:
      job: the trial.
      extra_environment: variables set for the child only (thread counts, visible GPUs).
      on_start: called with the `RunningTrial` once the child runs (the local pool uses it to
        forward Ctrl-C).

    Returns:
      The trial record: `status` is `finished`, `failed` (with `error`) or `interrupted`.
    """
    trial = RunningTrial(job, extra_environment)
    if on_start is not None:
        on_start(trial)
    return trial.wait()
