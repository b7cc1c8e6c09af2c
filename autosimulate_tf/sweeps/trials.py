"""From a sweep definition to its list of trials, and the `sweep.json` that pins them down.

Trials are numbered in a fixed order: grid points in the order of the grid lines
(the last line varies fastest), then random draws, then seeds. Each trial's folder is
`trial-<index>-<short bindings>[-seed<s>]`, e.g. `trial-003-damping=0.1,NUM_SAMPLES=50-seed1`:
readable, and stable because the index and the values come from the definition.

`root_dir/sweep.json` records the definition and every trial's bindings (random draws
included), so a re-run binds exactly the same values; a re-run whose definition differs
fails instead of mixing two sweeps in one folder.
"""

import dataclasses
import itertools
import json
import os
import random
import re

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.sweeps.spec import SweepSpec

SWEEP_FILE = "sweep.json"
DEFAULT_SEED_BINDINGS = {"train": "SEED = {seed}", "compare": "run_comparison.seeds = ({seed},)"}
# Anything else in a value (brackets, quotes, spaces, commas, @) becomes one underscore.
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
_MAX_LABEL_CHARS = 80


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run: its swept bindings (name -> gin text), its seed (None: the config's own) and folder name."""

    index: int
    name: str
    bindings: dict
    seed: int | None

    def gin_bindings(self, seed_binding: str) -> list[str]:
        """The trial's own bindings as gin lines, the seed binding last."""
        lines = [f"{name} = {value}" for name, value in self.bindings.items()]
        if self.seed is not None:
            lines.append(seed_binding_line(seed_binding, self.seed))
        return lines

    def as_json(self) -> dict:
        """The entry of `sweep.json`'s trial list."""
        return {"index": self.index, "name": self.name, "bindings": self.bindings, "seed": self.seed}


def seed_binding_line(seed_binding: str, seed: int) -> str:
    """`SEED = 3` for the template `SEED = {seed}`; a bare name `X` means `X = {seed}`."""
    template = seed_binding if "=" in seed_binding else f"{seed_binding} = {{seed}}"
    return template.format(seed=seed)


def binding_name(line: str) -> str:
    """The name a gin binding line sets, spaces removed: `'A.b = 1'` -> `'A.b'`."""
    return "".join(line.partition("=")[0].split())


def short_name(name: str) -> str:
    """The last part of a binding name, for folder names: `HypergradientEstimator.damping` -> `damping`."""
    return name.rsplit("/", 1)[-1].rsplit(".", 1)[-1]


def trial_name(index: int, width: int, bindings: dict, seed: int | None) -> str:
    """`trial-<index>-<name=value,...>[-seed<s>]`, reduced to characters safe in any file system."""
    label = ",".join(f"{short_name(name)}={_UNSAFE.sub('_', value).strip('_')}" for name, value in bindings.items())
    label = label[:_MAX_LABEL_CHARS]
    parts = [f"trial-{index:0{width}d}"] + ([label] if label else []) + ([f"seed{seed}"] if seed is not None else [])
    return "-".join(parts)


def random_draws(spec: SweepSpec, num_random_trials: int | None, sweep_seed: int) -> list[dict]:
    """The random lines' values for every draw (`[{}]` when nothing is drawn).

    Raises:
      ConfigError: random lines without a trial count, or a count without random lines.
    """
    if not spec.random:
        if num_random_trials is not None:
            raise ConfigError("num_random_trials is set but no swept binding is drawn at random.")
        return [{}]
    if not num_random_trials or num_random_trials < 1:
        raise ConfigError(
            f"Random sweep lines ({', '.join(axis.name for axis in spec.random)}) need num_random_trials >= 1 "
            "(--num_random_trials=N or `num_random_trials: N` in the sweep file)."
        )
    rng = random.Random(sweep_seed)
    return [{axis.name: axis.sample(rng) for axis in spec.random} for _ in range(num_random_trials)]


def expand_trials(spec: SweepSpec, seeds, num_random_trials: int | None = None, sweep_seed: int = 0) -> list[Trial]:
    """Every trial of the sweep: grid product x random draws x seeds, numbered from 0."""
    grid_points = [
        dict(zip([axis.name for axis in spec.grid], values, strict=True))
        for values in itertools.product(*(axis.values for axis in spec.grid))
    ]
    draws = random_draws(spec, num_random_trials, sweep_seed)
    seed_list = list(seeds) or [None]
    combinations = [({**point, **draw}, seed) for point in grid_points for draw in draws for seed in seed_list]
    width = max(3, len(str(len(combinations) - 1)))
    return [
        Trial(index, trial_name(index, width, bindings, seed), bindings, seed)
        for index, (bindings, seed) in enumerate(combinations)
    ]


def definition_json(spec: SweepSpec, **settings) -> dict:
    """What identifies a sweep: its swept lines and `settings` (files, fixed bindings, seeds, ...), JSON-normalised."""
    definition = {
        "grid": {axis.name: list(axis.values) for axis in spec.grid},
        "random": {axis.name: axis.text() for axis in spec.random},
        **settings,
    }
    return json.loads(json.dumps(definition))


def load_or_record(root_dir: str, definition: dict, trials: list[Trial]) -> list[Trial]:
    """Writes `root_dir/sweep.json` on the first run; on a re-run returns the trials it recorded.

    Raises:
      ConfigError: `root_dir` holds a sweep with another definition (names the keys that differ).
    """
    path = os.path.join(root_dir, SWEEP_FILE)
    if os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f)
        differing = sorted(
            key
            for key in set(recorded["definition"]) | set(definition)
            if recorded["definition"].get(key) != definition.get(key)
        )
        if differing:
            raise ConfigError(
                f"{root_dir} already holds a different sweep ({SWEEP_FILE} differs in: {', '.join(differing)}). "
                "Re-run it with the same flags, or use a new --root_dir."
            )
        return [Trial(**entry) for entry in recorded["trials"]]
    os.makedirs(root_dir, exist_ok=True)
    record = {"definition": definition, "trials": [trial.as_json() for trial in trials]}
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(temporary, path)
    return trials
