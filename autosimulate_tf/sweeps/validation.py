"""Checks a whole sweep with gin before any trial starts.

gin parses with `skip_unknown=False`, so an unknown configurable or parameter raises, and so
does a value it cannot parse. The checks go from coarse to fine, so that the error names the
culprit: the fixed configuration alone, then every swept value on its own (the error names the
swept binding and the value), then every trial's full set of bindings. gin accepts any macro
name, so a swept macro (a name without a dot, like `NUM_SAMPLES`) must be one the config
defines: a misspelled `NUM_SAMPLS` would otherwise be bound and silently never read.
"""

import re

import gin

from autosimulate_tf import configs
from autosimulate_tf.errors import ConfigError, check
from autosimulate_tf.sweeps.trials import Trial, binding_name, seed_binding_line


def _parse(gin_files, bindings, search_paths) -> None:
    gin.clear_config()
    configs.parse_gin(gin_files, bindings, search_paths)


def _gin_message(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def _config_macros() -> list[str]:
    """The macros the parsed config defines (the `# Macros:` section of `gin.config_str()`)."""
    text = gin.config_str()
    if "# Macros:" not in text:
        return []
    section = text.split("# Macros:", 1)[1].split("\n\n", 1)[0]
    return [match.group(1) for match in re.finditer(r"^([A-Za-z_]\w*) = ", section, flags=re.M)]


def check_overlaps(swept_names, fixed_bindings, seed_binding: str | None) -> None:
    """No binding is both fixed and swept, and the seed binding is neither.

    Raises:
      ConfigError: naming the binding.
    """
    if seed_binding is not None:
        try:
            seed_binding_line(seed_binding, 0)
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(f"--seed_binding={seed_binding!r} must contain {{seed}} or be a binding name.") from error
    fixed = {binding_name(line) for line in fixed_bindings}
    both = sorted(fixed & set(swept_names))
    check(not both, f"Both fixed (--gin_bindings) and swept (--sweep): {', '.join(both)}; drop one of the two.")
    if seed_binding is not None:
        seed_name = binding_name(seed_binding) if "=" in seed_binding else seed_binding.strip()
        clashes = sorted(({seed_name} & fixed) | ({seed_name} & set(swept_names)))
        check(
            not clashes,
            f"{seed_name} is the seed binding (--seed_binding, set from --seeds) and cannot also be fixed or swept.",
        )


def _check_swept_macros(swept_names, seed_binding: str | None) -> None:
    defined = _config_macros()
    undefined = sorted(name for name in swept_names if "." not in name and name not in defined)
    check(
        not undefined,
        f"Swept macro(s) {', '.join(undefined)} not defined by the gin files, so no setting would read them "
        f"(a typo?). The files define: {', '.join(defined) or 'no macros'}.",
    )
    if seed_binding is not None:
        seed_name = binding_name(seed_binding) if "=" in seed_binding else seed_binding.strip()
        check(
            "." in seed_name or seed_name in defined,
            f"The seed binding {seed_name} (--seed_binding) is not a macro the gin files define; set "
            "--seed_binding to the binding that sets the seed of your config, e.g. "
            "--seed_binding='AutoSimulateTrainer.seed = {seed}'.",
        )


def validate_sweep(gin_files, fixed_bindings, search_paths, trials: list[Trial], seed_binding: str | None) -> None:
    """Parses every trial's configuration with gin; the first problem raises, naming the binding.

    Args:
      gin_files: the sweep's gin files.
      fixed_bindings: bindings every trial shares.
      search_paths: gin search paths.
      trials: every trial of the sweep.
      seed_binding: the seed binding template, or None when the sweep sets no seed.

    Raises:
      ConfigError: the fixed configuration, a swept binding or value, a swept macro or the
        seed binding is rejected; the message names it and quotes gin's message.
    """
    swept_names = list(trials[0].bindings) if trials else []
    check_overlaps(swept_names, fixed_bindings, seed_binding)
    try:
        try:
            _parse(gin_files, fixed_bindings, search_paths)
        except Exception as error:
            raise ConfigError(
                f"gin rejects the fixed configuration (--gin_file/--gin_bindings): {_gin_message(error)}"
            ) from error
        _check_swept_macros(swept_names, seed_binding)
        checked = set()
        for trial in trials:
            for name, value in trial.bindings.items():
                if (name, value) not in checked:
                    checked.add((name, value))
                    _check_one_binding(gin_files, fixed_bindings, search_paths, name, value)
        _check_every_trial(gin_files, fixed_bindings, search_paths, trials, seed_binding)
    finally:
        gin.clear_config()


def _check_one_binding(gin_files, fixed_bindings, search_paths, name: str, value: str) -> None:
    try:
        _parse(gin_files, [*fixed_bindings, f"{name} = {value}"], search_paths)
    except Exception as error:
        raise ConfigError(f"Swept binding {name}: gin rejects `{name} = {value}`: {_gin_message(error)}") from error


def _check_every_trial(gin_files, fixed_bindings, search_paths, trials, seed_binding) -> None:
    seen = set()
    for trial in trials:
        lines = trial.gin_bindings(seed_binding or "")
        if tuple(lines) in seen:
            continue
        seen.add(tuple(lines))
        try:
            _parse(gin_files, [*fixed_bindings, *lines], search_paths)
        except Exception as error:
            raise ConfigError(f"Trial {trial.name}: gin rejects its bindings {lines}: {_gin_message(error)}") from error
