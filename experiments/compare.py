"""Compare AutoSimulate with Learning to Simulate, random search and the untuned default.

    python experiments/compare.py --gin_file=compare_gmm.gin --root_dir=/tmp/compare_gmm
    python experiments/compare.py --gin_file=compare_pools.gin --root_dir=/tmp/compare_pools \
        --gin_bindings="run_comparison.seeds = (0, 1, 2, 3, 4)"

Writes comparison.json (medians over seeds, ratios to AutoSimulate), runs.json (every
curve), table.txt and PNG plots into --root_dir.

To use several cores, run one process per seed (`--gin_bindings="run_comparison.seeds = (0,)"`
etc., each with its own --root_dir), then merge the finished folders:

    python experiments/compare.py --root_dir=/tmp/compare --merge=/tmp/compare_0,/tmp/compare_1
"""

from autosimulate_tf.comparison import launch

if __name__ == "__main__":
    launch.run()
