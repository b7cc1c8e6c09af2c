"""What a sweep varies: grid lines, random lines and the sweep-file directives.

A sweep line names one gin binding and the values it takes, in gin syntax:

    HypergradientEstimator.damping = [0.03, 0.1, 1.0]      # grid: one trial per value
    NUM_SAMPLES = [50, 200]                                # grid lines multiply
    mlp.hidden_units = [(16, 16), (32, 32)]                # any gin value: tuples, strings, @refs
    outer/keras.optimizers.Adam.learning_rate = loguniform(0.01, 1.0)   # random
    AutoSimulateTrainer.num_inner_steps = randint(5, 30)                # random integer, both ends included
    HypergradientEstimator.curvature = choice('gauss_newton', 'hessian')

`uniform(low, high)` and `loguniform(low, high)` draw floats (`loguniform`: uniform in
log space, `low > 0`), `randint(low, high)` an integer in `[low, high]`, `choice(...)` one
of its gin values. A sweep file holds such lines (one per line; `#` starts a comment; a
list may run over several lines until its brackets close) and two directives:

    num_random_trials: 8      # random draws; every draw is combined with every grid point
    sweep_seed: 0             # seeds the draws, so a definition always yields the same trials

The grid is the product of the grid lines; with random lines there are `num_random_trials`
draws, each taking one value of every random line, and the same draws are combined with
every grid point (grid points are compared on equal draws). `--sweep` flags take the same
lines as the file.
"""

import dataclasses
import math
import random
import re

from autosimulate_tf.errors import ConfigError, check

# A gin binding name: optional scopes (`outer/`), dotted configurable path, parameter; or a macro.
_BINDING_NAME = re.compile(r"^[A-Za-z_][\w.]*(/[A-Za-z_][\w.]*)*$")
_RANDOM_LINE = re.compile(r"^(uniform|loguniform|randint|choice)\s*\((.*)\)$", re.S)
_OPENING, _CLOSING = "([{", ")]}"
DIRECTIVES = ("num_random_trials", "sweep_seed")


@dataclasses.dataclass(frozen=True)
class GridAxis:
    """One swept binding and its listed values (gin text)."""

    name: str
    values: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class RandomAxis:
    """One swept binding drawn from a distribution: `kind` and its arguments (gin text)."""

    name: str
    kind: str
    arguments: tuple[str, ...]

    def sample(self, rng: random.Random) -> str:
        """One draw, as the gin text bound in the trial."""
        if self.kind == "choice":
            return self.arguments[rng.randrange(len(self.arguments))]
        low, high = (float(argument) for argument in self.arguments)
        if self.kind == "randint":
            return str(rng.randint(int(low), int(high)))
        if self.kind == "loguniform":
            return _float_text(math.exp(rng.uniform(math.log(low), math.log(high))))
        return _float_text(rng.uniform(low, high))

    def text(self) -> str:
        """The line's right-hand side, e.g. `loguniform(0.01, 1.0)`."""
        return f"{self.kind}({', '.join(self.arguments)})"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """Every swept binding, in the order given, with the random-draw settings."""

    grid: tuple[GridAxis, ...] = ()
    random: tuple[RandomAxis, ...] = ()
    num_random_trials: int | None = None
    sweep_seed: int | None = None

    @property
    def names(self) -> list[str]:
        """Every swept binding name, grid first."""
        return [axis.name for axis in self.grid] + [axis.name for axis in self.random]


def _float_text(value: float) -> str:
    # Six significant digits keep folder names and tables readable; the text is what the trial binds.
    return f"{value:.6g}"


def split_top_level(text: str) -> list[str]:
    """Splits `text` at the commas outside brackets and quotes: `"1, (2, 3), 'a,b'"` -> 3 items.

    Raises:
      ValueError: unbalanced brackets or an unterminated string.
    """
    items, depth, quote, start, index = [], 0, None, 0, 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced {char!r}")
        elif char == "," and depth == 0:
            items.append(text[start:index].strip())
            start = index + 1
        index += 1
    if quote or depth:
        raise ValueError("unterminated string" if quote else "unclosed bracket")
    items.append(text[start:].strip())
    if items and not items[-1]:
        items.pop()  # a trailing comma, as Python and gin allow
    return items


def parse_line(line: str, where: str) -> GridAxis | RandomAxis:
    """Parses `NAME = [v1, v2, ...]` or `NAME = uniform(a, b)` (and the other random forms).

    Args:
      line: the sweep line.
      where: how to name the line in an error (`--sweep` or `sweep.txt:3`).

    Raises:
      ConfigError: naming the line and what is wrong with it.
    """
    name, equals, values = line.partition("=")
    name, values = name.strip(), values.strip()
    check(
        bool(equals) and bool(_BINDING_NAME.match(name)),
        f"{where} {line!r}: expected BINDING=[v1, v2, ...] (or BINDING=uniform(low, high) etc.), "
        "with BINDING a gin binding such as HypergradientEstimator.damping or a macro such as NUM_SAMPLES.",
    )
    random_match = _RANDOM_LINE.match(values)
    if random_match:
        return _random_axis(name, random_match.group(1), random_match.group(2), f"{where} {line!r}")
    check(
        values.startswith("[") and values.endswith("]"),
        f"{where} {line!r}: the values of {name} must be a list in brackets, e.g. {name}=[0.1, 1.0].",
    )
    try:
        items = split_top_level(values[1:-1])
    except ValueError as error:
        raise ConfigError(f"{where} {line!r}: cannot split the values of {name}: {error}.") from error
    check(bool(items) and all(items), f"{where} {line!r}: {name} needs a non-empty list of values.")
    check(len(set(items)) == len(items), f"{where} {line!r}: {name} lists a value twice.")
    return GridAxis(name, tuple(items))


def _random_axis(name: str, kind: str, arguments: str, where: str) -> RandomAxis:
    """Checks the arguments of a random line: two numbers (`low < high`) or non-empty choices."""
    try:
        items = split_top_level(arguments)
    except ValueError as error:
        raise ConfigError(f"{where}: cannot split the arguments of {kind}: {error}.") from error
    if kind == "choice":
        check(bool(items) and all(items), f"{where}: choice(...) needs at least one value.")
        return RandomAxis(name, kind, tuple(items))
    try:
        low, high = (float(item) for item in items)
    except ValueError as error:
        raise ConfigError(f"{where}: {kind} takes two numbers, low and high.") from error
    check(low < high, f"{where}: {kind} needs low < high.")
    check(kind != "loguniform" or low > 0, f"{where}: loguniform needs low > 0.")
    check(kind != "randint" or (low.is_integer() and high.is_integer()), f"{where}: randint takes two integers.")
    return RandomAxis(name, kind, tuple(items))


def _logical_lines(text: str, filename: str) -> list[tuple[str, str]]:
    """`(where, line)` of each sweep-file entry: comments dropped, bracketed lists joined over lines."""
    entries, pending, first_line = [], "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line and not pending:
            continue
        if not pending:
            first_line = number
        pending = f"{pending} {line}".strip()
        if _is_balanced(pending):
            entries.append((f"{filename}:{first_line}", pending))
            pending = ""
    check(not pending, f"{filename}:{first_line}: a bracket opened here is never closed.")
    return entries


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[:index]
    return line


def _is_balanced(text: str) -> bool:
    try:
        split_top_level(text)
    except ValueError:
        return False
    return True


def _directive(where: str, line: str) -> tuple[str, int] | None:
    """`(name, value)` of a `num_random_trials: 8` / `sweep_seed: 0` line, None for a sweep line."""
    name, colon, value = line.partition(":")
    if not colon or "=" in name or name.strip() not in DIRECTIVES:
        check("=" in line, f"{where} {line!r}: expected BINDING=[...] or one of {', '.join(DIRECTIVES)}: N.")
        return None
    try:
        return name.strip(), int(value.strip())
    except ValueError as error:
        raise ConfigError(f"{where} {line!r}: {name.strip()} takes an integer.") from error


def parse_spec(sweep_lines=(), sweep_file_text: str | None = None, sweep_file_name: str = "sweep file") -> SweepSpec:
    """Builds the `SweepSpec` of `--sweep` lines and a sweep file's text.

    Raises:
      ConfigError: a malformed line, or a binding swept twice.
    """
    entries = [("--sweep", line) for line in sweep_lines]
    directives = {}
    if sweep_file_text is not None:
        for where, line in _logical_lines(sweep_file_text, sweep_file_name):
            directive = _directive(where, line)
            if directive:
                directives[directive[0]] = directive[1]
            else:
                entries.append((where, line))
    axes = [parse_line(line, where) for where, line in entries]
    names = [axis.name for axis in axes]
    twice = sorted({name for name in names if names.count(name) > 1})
    check(not twice, f"Swept more than once: {', '.join(twice)}.")
    return SweepSpec(
        grid=tuple(axis for axis in axes if isinstance(axis, GridAxis)),
        random=tuple(axis for axis in axes if isinstance(axis, RandomAxis)),
        num_random_trials=directives.get("num_random_trials"),
        sweep_seed=directives.get("sweep_seed"),
    )
