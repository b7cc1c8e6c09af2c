"""Sweep gin bindings over seeds: one train (or compare) run per trial, locally or on Ray Tune.

    python experiments/sweep.py --root_dir=/tmp/sweep_toy --gin_file=toy_gmm.gin \
        --sweep="HypergradientEstimator.damping=[0.03, 0.1, 1.0]" --sweep="NUM_SAMPLES=[50, 200]" \
        --seeds=0,1,2 --parallel=2

Installed as the `autosimulate-sweep` console script. Flags: --root_dir, --gin_file,
--gin_bindings (fixed), --gin_search_path, --sweep (repeatable), --sweep_file,
--num_random_trials, --sweep_seed, --seeds, --seed_binding, --entry_point (train, compare),
--parallel, --backend (local, ray), --ray_address, --cpus_per_trial, --gpus_per_trial,
--retry_failed, --metric, --metric_mode. Re-running the same command resumes the sweep.
"""

from autosimulate_tf.sweeps import launch

if __name__ == "__main__":
    launch.run()
