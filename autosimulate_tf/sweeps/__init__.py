"""Gin experiment sweeps: a grid (and random draws) of bindings over seeds, on one machine or Ray Tune.

  spec.py          sweep lines and sweep files: BINDING=[...], uniform(...), directives
  trials.py        the trials of a definition, their folder names, sweep.json
  validation.py    every trial's configuration checked with gin before any trial starts
  trial_runner.py  one trial as a child process of the train/compare binary; trial.json
  local.py         local child processes, `parallel` at a time (the default backend)
  ray_tune.py      the same trials on Ray Tune (optional extra `[ray]`)
  results.py       sweep.csv and the summary table over seeds
  hparams.py       TensorBoard HParams data
  run.py           `run_sweep`: all of the above in order
  launch.py        the `autosimulate-sweep` command line

Nothing is imported here: a Ray worker imports `trial_runner` alone, without TensorFlow.
"""
