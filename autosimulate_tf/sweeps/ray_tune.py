"""Runs trials on Ray Tune: a local instance, or a cluster with `--ray_address=auto`.

Each Ray trial starts the same child process as the local backend
(`trial_runner.RunningTrial`), so a trial behaves the same on either backend and the same
sweep file, folders and resume apply. Ray only places trials: `cpus_per_trial` and
`gpus_per_trial` are its resource request per trial (Ray sets `CUDA_VISIBLE_DEVICES` for
the GPUs it grants), `parallel` caps the trials at once (default: as many as the resources allow).

When Tune stops a trial (Ctrl-C of the sweep, or the end of the experiment), the trainable's
`cleanup` sends SIGINT to the child, which saves a checkpoint: the trial is recorded
`interrupted` and a re-run resumes it.

On a cluster, `--root_dir` must be a folder every node sees at the same path (a shared file
system): trials write there and the sweep reads their results back from there. Tune's own
bookkeeping goes to `<root_dir>/ray_results/`.

Needs the optional extra: `pip install 'autosimulate_tf[ray]'` (Ray with Tune).
"""

import os

from autosimulate_tf.sweeps import trial_runner

# How long one Tune step waits for the child before reporting back; Tune can only stop a
# trial between steps.
_STEP_WAIT_S = 2.0
_CLEANUP_WAIT_S = 60.0


def import_ray_tune():
    """`(ray, ray.tune)`, or an ImportError naming the extra to install."""
    try:
        import ray
        from ray import tune
    except ImportError as error:
        raise ImportError(
            "--backend=ray needs Ray Tune: pip install 'autosimulate_tf[ray]' (or pip install 'ray[tune]>=2.40,<3')."
        ) from error
    return ray, tune


def _trainable_class(tune):
    """A Tune class trainable that runs one trial's child process (built here: `tune` is imported lazily)."""

    class SweepTrial(tune.Trainable):
        """Starts the trial's child in `setup`, reports until it ends, interrupts it in `cleanup`."""

        def setup(self, config, jobs=None, environment=None):
            self.trial = trial_runner.RunningTrial(jobs[config["trial"]], environment)
            self.record = None

        def step(self):
            self.record = self.trial.wait(timeout_s=_STEP_WAIT_S)
            if self.record is None:
                return {"status": trial_runner.RUNNING}
            return {"status": self.record["status"], "return_code": self.record["return_code"], "done": True}

        def cleanup(self):
            if self.record is None:  # Stopped by Tune before the child ended.
                self.trial.interrupt()
                self.trial.wait(timeout_s=_CLEANUP_WAIT_S)

        # The trial keeps its own checkpoints in its folder; Tune's would be empty.
        def save_checkpoint(self, checkpoint_dir):
            return None

        def load_checkpoint(self, checkpoint):
            pass

    return SweepTrial


def _trial_dirname(trial) -> str:
    return trial.config["trial"]


def run_ray(jobs, root_dir: str, address=None, parallel=None, cpus_per_trial=None, gpus_per_trial=None) -> list[dict]:
    """Runs `jobs` as Ray Tune trials and returns the `trial.json` records they wrote.

    Args:
      jobs: `trial_runner.TrialJob`s.
      root_dir: the sweep folder (Tune's files go to `root_dir/ray_results`).
      address: Ray address (`auto`: the running cluster); None: a local instance, started
        here unless Ray is already initialised.
      parallel: at most this many trials at once; None: as many as the resources allow.
      cpus_per_trial: CPUs Ray reserves per trial (default 1); also caps its thread pools.
      gpus_per_trial: GPUs Ray reserves per trial (default 0; a fraction shares a GPU).

    Returns:
      The records of the trials that started (read back from their folders).
    """
    ray, tune = import_ray_tune()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False)
    try:
        cpus = 1.0 if cpus_per_trial is None else cpus_per_trial
        # Tune's config holds only the trial's name (shown in its tables); the jobs travel as parameters.
        trainable = tune.with_parameters(
            _trainable_class(tune), jobs={job.name: job for job in jobs}, environment=trial_runner.cpu_environment(cpus)
        )
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus_per_trial or 0}),
            param_space={"trial": tune.grid_search([job.name for job in jobs])},
            tune_config=tune.TuneConfig(max_concurrent_trials=parallel, trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=os.path.join(os.path.abspath(root_dir), "ray_results"),
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                verbose=1,
            ),
        )
        tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    records = [trial_runner.read_record(job.folder) for job in jobs]
    return [record for record in records if record is not None]
