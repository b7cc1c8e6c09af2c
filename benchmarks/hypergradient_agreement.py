"""Does the hypergradient point where fresh models improve? Per psi factor, at the starting psi.

    python benchmarks/hypergradient_agreement.py --gin_file=mnist_autosimulate.gin \
        --gin_bindings="MnistDigitsSimulator.tune_class_prior = False" \
        --gin_bindings="AutoSimulateTrainer.reinitialize_every = 0" \
        --factors=log_distortion_mean,log_thickness_mean,shear_mean --deltas=0.5,0.4,0.15 \
        --output_file=benchmarks/results/mnist/hypergradient_agreement.json

AutoSimulate moves psi along minus its hypergradient, the estimated derivative of the
*warm-started* model's validation loss. What a user wants is a psi whose renders train a
*fresh* model well. This script measures both at the config's starting psi, per factor:

  fresh        the fresh-model validation loss and accuracy (`selection/ScratchTrainingEvaluator`
               of the gin file) at the starting psi and with one factor moved by `+delta`,
               for each of `--fresh_seeds` (same seed, same renders' noise: paired differences);
  warm         mean and standard error of the hypergradient component over outer iterations
               `--warm_skip`..`--warm_iterations` of one run whose psi is held at the start (psi
               learning rate 0), so the warm-started model keeps training on these renders;
  young        the same over `--young_seeds` runs of one outer iteration each: the estimate at
               a model just trained `num_initial_inner_steps` from scratch.

With `--toward_bindings` (bindings that start the simulator at a psi known to be better, for
example the scenes' `SceneSimulator.start = 'oracle'`), `toward` compares the descent direction
(minus the mean warm and young hypergradients) with the step from the starting psi to that one
over *every* psi component (or only the variables named in `--toward_components`): their cosine,
and per component whether a significant hypergradient points toward it. Categorical logits are centred first (a softmax ignores a
shift, and the step to the better psi should not contain one). `--line_fractions` add fresh-model
scores (the `fresh` budget and seeds) at `start + t * step` for each fraction t: whether fresh
models improve along the straight way to the better psi, even where no single factor's move helps.
`--warm_iterations=0` and an empty `--young_seeds` leave the hypergradient parts out (`null`).

`agreement` then says, per factor, which way each signal would move the factor: `fresh` by
the sign of the paired validation-loss change, `fresh_accuracy` by that of the paired
validation-error change (1 - accuracy: the fresh-model counterpart of the `expected_error`
objective, and what a user scores), `warm` and `young` by minus the sign of the
mean hypergradient (`null` when it is within two standard errors of 0). Hypergradient
components are taken with respect to psi's unconstrained variables; the factor bijectors are
increasing, so their signs compare with a change of the constrained value.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gin
import hypergradient_recording
import numpy as np
import tensorflow as tf
from absl import app, flags

from autosimulate_tf import configs
from autosimulate_tf.problem import Problem
from autosimulate_tf.train.scratch_training import ScratchTrainingEvaluator

flags.DEFINE_string("gin_file", "mnist_autosimulate.gin", "The AutoSimulate config to probe.")
flags.DEFINE_multi_string("gin_bindings", [], "Extra bindings (for every part).")
flags.DEFINE_list("factors", ["log_distortion_mean"], "Scalar psi components to probe.")
flags.DEFINE_list("deltas", ["0.5"], "Constrained change of each factor for the fresh models (one per factor).")
flags.DEFINE_list("fresh_seeds", ["0", "1"], "Fresh-model seeds (each setting uses all of them).")
flags.DEFINE_integer("warm_seed", 0, "Seed of the held-psi warm-started run.")
flags.DEFINE_integer("warm_iterations", 40, "Outer iterations of the held-psi run.")
flags.DEFINE_integer("warm_skip", 5, "First held-psi iterations left out (the model is still young).")
flags.DEFINE_list("young_seeds", [str(s) for s in range(10, 18)], "Seeds of the one-iteration runs.")
flags.DEFINE_multi_string(
    "toward_bindings", [], "Bindings that start the simulator at a better psi (adds `toward` to the JSON)."
)
flags.DEFINE_list(
    "line_fractions", [], "Fractions t of the step to the --toward_bindings psi to score fresh models at."
)
flags.DEFINE_list(
    "toward_components", [], "psi variables the step to the better psi moves (default: all; the others stay)."
)
flags.DEFINE_string("output_file", "/tmp/hypergradient_agreement.json", "Where the JSON goes.")
FLAGS = flags.FLAGS


def component_index(simulator, name: str) -> int:
    """Position of the scalar psi component `name` in the concatenated (flattened) psi gradient."""
    offset = 0
    for parameter, variable in zip(simulator.parameter_names, simulator.psi_variables, strict=True):
        size = int(np.prod(variable.shape))
        if parameter == name:
            if size != 1:
                raise ValueError(f"--factors: {name!r} has {size} numbers; only scalar components can be probed.")
            return offset
        offset += size
    raise ValueError(f"--factors: unknown psi component {name!r}; known: {simulator.parameter_names}.")


def component_labels(simulator) -> list[str]:
    """One label per number of the flattened psi: a one-number variable's name, `name[i]` for a vector's entries."""
    labels = []
    for name, variable in zip(simulator.parameter_names, simulator.psi_variables, strict=True):
        size = int(np.prod(variable.shape))
        labels.extend([name] if size == 1 else [f"{name}[{i}]" for i in range(size)])
    return labels


def centred_unconstrained_psi(simulator, constrained: dict) -> np.ndarray:
    """The flattened unconstrained psi of `constrained` values, every `*_logits` vector centred first.

    Uses `simulator`'s own bijectors (its psi is restored afterwards).
    """
    centred = {
        name: np.asarray(value, np.float32) - np.mean(value) if name.endswith("_logits") else value
        for name, value in constrained.items()
    }
    with simulator.temporary_psi(constrained=centred):
        return simulator.unconstrained_vector().astype(float)


def step_mask(simulator, components) -> np.ndarray:
    """1 for each flattened psi number of the variables named in `components` (all when empty), else 0.

    Raises:
      ValueError: naming an unknown variable.
    """
    unknown = sorted(set(components) - set(simulator.parameter_names))
    if unknown:
        raise ValueError(f"--toward_components: unknown psi variables {unknown}; known: {simulator.parameter_names}.")
    return np.concatenate(
        [
            np.full(int(np.prod(variable.shape)), float(not components or name in components))
            for name, variable in zip(simulator.parameter_names, simulator.psi_variables, strict=True)
        ]
    )


def alignment(change, gradients, labels) -> dict:
    """How the descent direction `-mean(gradients)` lines up with the psi step `change`.

    Args:
      change: `[P]` step from the starting psi to a better one (unconstrained).
      gradients: `[T, P]` hypergradient estimates at the starting psi (T >= 2).
      labels: the P component names.

    Returns:
      `{"cosine", "toward", "away", "undecided", "components"}`: the cosine between the
      descent direction and `change`; how many components a significant hypergradient
      (`hypergradient_direction`) moves toward the better psi, how many away, how many it
      leaves undecided; and per component its change, mean and standard error, direction.
    """
    change = np.asarray(change, float)
    gradients = np.asarray(gradients, float)
    mean = gradients.mean(axis=0)
    standard_error = gradients.std(axis=0, ddof=1) / np.sqrt(len(gradients))
    norms = np.linalg.norm(mean) * np.linalg.norm(change)
    counts = {"toward": 0, "away": 0, "undecided": 0}
    components = {}
    for label, step, m, se in zip(labels, change, mean, standard_error, strict=True):
        direction = hypergradient_direction(m, se)
        if direction is None or step == 0:
            counts["undecided"] += 1
        else:
            counts["toward" if direction == np.sign(step) else "away"] += 1
        components[label] = {"change": float(step), "hypergradient": [float(m), float(se)], "direction": direction}
    cosine = float(-mean @ change / norms) if norms > 0 else None
    return {"cosine": cosine, **counts, "components": components}


def mean_and_standard_error(values) -> tuple[float, float]:
    """Sample mean and its standard error (ddof 1) of a 1-D sequence of at least two values."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def hypergradient_direction(mean: float, standard_error: float):
    """Which way a descent step moves the factor: +1, -1, or None within two standard errors of 0."""
    if abs(mean) <= 2 * standard_error:
        return None
    return -1 if mean > 0 else 1


def fresh_direction(baseline_losses, moved_losses):
    """+1 when moving the factor up lowers the fresh-model validation loss on every seed, -1 when it
    raises it on every seed, None when the seeds disagree."""
    changes = np.asarray(moved_losses, dtype=float) - np.asarray(baseline_losses, dtype=float)
    if np.all(changes < 0):
        return 1
    if np.all(changes > 0):
        return -1
    return None


def fresh_accuracy_direction(baseline_accuracies, moved_accuracies):
    """`fresh_direction` judged by the validation error 1 - accuracy: +1 when moving the factor up
    raises the fresh-model accuracy on every seed, -1 when it lowers it on every seed, else None."""
    return fresh_direction(np.subtract(1.0, baseline_accuracies), np.subtract(1.0, moved_accuracies))


def fresh_scores(problem, settings: dict, seeds: list[int]) -> dict:
    """`{label: {"val_loss": [per seed], "val_accuracy": [per seed]}}` of fresh models per psi change.

    Uses the parsed gin config's `selection/ScratchTrainingEvaluator` budget.
    """
    with gin.config_scope("selection"):
        evaluator = ScratchTrainingEvaluator(problem)
    scores = {}
    for label, change in settings.items():
        rows = []
        with problem.simulator.temporary_psi(constrained={k: np.float32(v) for k, v in change.items()}):
            for seed in seeds:
                rows.append(evaluator.evaluate(seed=seed))
        scores[label] = {key: [row[key] for row in rows] for key in ("val_loss", "val_accuracy")}
        print("fresh", label, change, scores[label], flush=True)
    return scores


def line_scores(problem, start_psi, change, fractions, seeds: list[int]) -> dict:
    """`{str(t): {"val_loss": [per seed], "val_accuracy": [per seed]}}` of fresh models at `start_psi + t * change`.

    `start_psi` and `change` are flattened unconstrained psi (`centred_unconstrained_psi`); the
    budget is the parsed gin config's `selection/ScratchTrainingEvaluator`, as in `fresh_scores`.
    """
    with gin.config_scope("selection"):
        evaluator = ScratchTrainingEvaluator(problem)
    simulator = problem.simulator
    scores = {}
    for fraction in fractions:
        with simulator.temporary_psi():  # restores psi after the set below
            simulator.set_unconstrained_vector(np.asarray(start_psi) + float(fraction) * np.asarray(change))
            rows = [evaluator.evaluate(seed=seed) for seed in seeds]
        scores[str(fraction)] = {key: [row[key] for row in rows] for key in ("val_loss", "val_accuracy")}
        print("line", fraction, scores[str(fraction)], flush=True)
    return scores


def record_hypergradients(bindings) -> tuple:
    """`(warm, young)` `[T, P]` hypergradient estimates at the starting psi; `None` for a part left out.

    warm: iterations `--warm_skip`..`--warm_iterations` of one held-psi run (left out when
    `--warm_iterations=0`); young: one estimate per `--young_seeds` run (left out when empty).
    """
    tf.config.run_functions_eagerly(True)  # every estimate readable; the same numbers as compiled
    warm = young = None
    if FLAGS.warm_iterations > 0:
        warm = hypergradient_recording.record_run(
            bindings, FLAGS.warm_seed, FLAGS.warm_iterations, gin_file=FLAGS.gin_file, hold_psi=True
        )["gradients"][FLAGS.warm_skip :]
    if FLAGS.young_seeds:
        runs = [
            hypergradient_recording.record_run(bindings, int(seed), 1, gin_file=FLAGS.gin_file, hold_psi=True)
            for seed in FLAGS.young_seeds
        ]
        young = np.concatenate([run["gradients"] for run in runs])
    return warm, young


def main(argv) -> None:
    """Runs the three measurements and writes the JSON described in the module docstring."""
    del argv
    if len(FLAGS.deltas) != len(FLAGS.factors):
        raise app.UsageError(f"--deltas: {len(FLAGS.deltas)} values for {len(FLAGS.factors)} --factors.")
    if FLAGS.line_fractions and not FLAGS.toward_bindings:
        raise app.UsageError("--line_fractions needs --toward_bindings (the psi the line goes to).")
    fractions = [float(t) for t in FLAGS.line_fractions]
    bindings = list(FLAGS.gin_bindings)
    better_psi = None
    if FLAGS.toward_bindings:  # built first: a bad binding fails before any training
        gin.clear_config()
        configs.parse_gin([FLAGS.gin_file], bindings + list(FLAGS.toward_bindings))
        better_psi = Problem().simulator.constrained_parameters()
    gin.clear_config()
    configs.parse_gin([FLAGS.gin_file], bindings)
    problem = Problem()
    simulator = problem.simulator
    if better_psi is not None:
        start_psi = centred_unconstrained_psi(simulator, simulator.constrained_parameters())
        change = centred_unconstrained_psi(simulator, better_psi) - start_psi
        change = change * step_mask(simulator, FLAGS.toward_components)
    indices = {name: component_index(simulator, name) for name in FLAGS.factors}  # bad names fail here
    start = {name: float(simulator.parameter(name).numpy()) for name in FLAGS.factors}
    settings = {"start": {}}
    for name, delta in zip(FLAGS.factors, FLAGS.deltas, strict=True):
        settings[f"{name} + {delta}"] = {name: start[name] + float(delta)}
    fresh = fresh_scores(problem, settings, [int(s) for s in FLAGS.fresh_seeds])
    line = (
        line_scores(problem, start_psi, change, fractions, [int(s) for s in FLAGS.fresh_seeds]) if fractions else None
    )

    warm, young = record_hypergradients(bindings)

    def statistics(gradients, index):
        return None if gradients is None else mean_and_standard_error(gradients[:, index])

    def direction(statistic):
        return None if statistic is None else hypergradient_direction(*statistic)

    results = {
        "gin_file": FLAGS.gin_file,
        "gin_bindings": bindings,
        "start": start,
        "fresh": fresh,
        "warm_iterations": [FLAGS.warm_skip, FLAGS.warm_iterations],
        "young_runs": 0 if young is None else len(young),
        "factors": {},
    }
    for name, delta in zip(FLAGS.factors, FLAGS.deltas, strict=True):
        moved = fresh[f"{name} + {delta}"]
        warm_statistics, young_statistics = statistics(warm, indices[name]), statistics(young, indices[name])
        results["factors"][name] = {
            "delta": float(delta),
            "fresh_val_loss_change": list(np.subtract(moved["val_loss"], fresh["start"]["val_loss"])),
            "fresh_val_accuracy_change": list(np.subtract(moved["val_accuracy"], fresh["start"]["val_accuracy"])),
            "warm_hypergradient": warm_statistics,
            "young_hypergradient": young_statistics,
            "agreement": {
                "fresh": fresh_direction(fresh["start"]["val_loss"], moved["val_loss"]),
                "fresh_accuracy": fresh_accuracy_direction(fresh["start"]["val_accuracy"], moved["val_accuracy"]),
                "warm": direction(warm_statistics),
                "young": direction(young_statistics),
            },
        }
        print(name, results["factors"][name], flush=True)
    if better_psi is not None:
        labels = component_labels(simulator)
        results["toward"] = {
            "bindings": list(FLAGS.toward_bindings),
            "components": list(FLAGS.toward_components) or "all",
            "warm": None if warm is None else alignment(change, warm, labels),
            "young": None if young is None else alignment(change, young, labels),
            "line": line,
        }
        for part in [p for p in ("warm", "young") if results["toward"][p] is not None]:
            summary = {k: v for k, v in results["toward"][part].items() if k != "components"}
            print("toward", part, summary, flush=True)
    with open(FLAGS.output_file, "w") as stream:
        json.dump(results, stream, indent=2)


if __name__ == "__main__":
    app.run(main)
