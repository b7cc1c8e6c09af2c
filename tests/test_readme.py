"""The README's gin snippets name real configurables (its commands: tests/test_readme_commands.py)."""

import os
import re

import gin

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def running_bigger_bindings() -> list[str]:
    """The gin lines of the README's "Running bigger" section, comments stripped."""
    with open(README) as f:
        text = f.read()
    section = text.split("## Running bigger", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


def test_readme_running_bigger_bindings_name_real_configurables():
    from autosimulate_tf import configs

    bindings = running_bigger_bindings()
    assert any("ProcessPoolBackend" in line for line in bindings)
    assert any("RayBackend" in line for line in bindings)
    assert any("MirroredStrategy" in line for line in bindings)
    for line in bindings:
        gin.clear_config()
        # Parsing with skip_unknown=False fails on any misspelled configurable or parameter.
        configs.parse_gin(["toy_gmm.gin"], [line])
    gin.clear_config()
