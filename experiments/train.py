"""Train a simulator with AutoSimulate from gin configs.

    python experiments/train.py --gin_file=toy_gmm.gin --root_dir=/tmp/toy_gmm
    python experiments/train.py --gin_file=pools.gin --root_dir=/tmp/pools \
        --gin_bindings="AutoSimulateTrainer.num_samples = 100"

Installed as the `autosimulate-train` console script. Flags: --root_dir,
--gin_file (repeatable), --gin_bindings (repeatable), --gin_search_path,
--run_functions_eagerly.
"""

from autosimulate_tf.train import launch

if __name__ == "__main__":
    launch.run()
