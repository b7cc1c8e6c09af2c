"""Modules and functions of `autosimulate_tf` stay small enough to read in one sitting.

- A module has at most `MAX_MODULE_LINES` lines (every physical line of the file), unless it
  is a pure data table listed in `DATA_TABLE_MODULES`.
- A function or method, nested ones included, has at most `MAX_FUNCTION_LINES` lines, counted
  from its `def` line to the last line of its body, leaving out the lines of its docstring.
  Decorators are not counted; blank lines and comment lines are: they are what a reader
  scrolls through, and counting them keeps the rule simple. A nested function's lines count
  towards the function that encloses it as well as towards itself.

Ruff's `C901` (complexity) and `PLR0915` (statement count) are the complementary checks; see
`[tool.ruff.lint]` in `pyproject.toml`.
"""

import ast
import pathlib
import textwrap

REPO_DIR = pathlib.Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_DIR / "autosimulate_tf"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Paths relative to the repository root, e.g. "autosimulate_tf/simulators/glyphs.py".
# Only a module that is a pure data table (such as glyph skeletons: literals, no logic) may
# be listed; a module of code over the limit is split instead.
DATA_TABLE_MODULES: frozenset[str] = frozenset()


def _package_modules() -> list[pathlib.Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def _relative(path: pathlib.Path) -> str:
    return path.relative_to(REPO_DIR).as_posix()


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """`(qualified name, def line, length)` for every function and method in `source`.

    Names are qualified by their enclosing classes and functions (`Trainer.train.step`).
    The length is the number of lines from the `def` line to the end of the body, less the
    docstring's lines.
    """
    lengths = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = set(range(child.lineno, child.end_lineno + 1))
                docstring = child.body[0]
                if ast.get_docstring(child, clean=False) is not None:
                    lines -= set(range(docstring.lineno, docstring.end_lineno + 1))
                lines.add(child.lineno)  # a one-line `def f(): """Doc."""` is one line
                lengths.append((prefix + child.name, child.lineno, len(lines)))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def test_modules_are_short():
    too_long = []
    for path in _package_modules():
        num_lines = len(path.read_text().splitlines())
        if num_lines > MAX_MODULE_LINES and _relative(path) not in DATA_TABLE_MODULES:
            too_long.append(f"{_relative(path)}: {num_lines} lines")
    assert not too_long, f"Modules over {MAX_MODULE_LINES} lines (split them):\n" + "\n".join(too_long)


def test_data_table_allow_list_names_existing_modules():
    missing = sorted(name for name in DATA_TABLE_MODULES if not (REPO_DIR / name).is_file())
    assert not missing, f"DATA_TABLE_MODULES lists modules that do not exist: {missing}"


def test_functions_are_short():
    too_long = []
    for path in _package_modules():
        for name, line, length in function_lengths(path.read_text()):
            if length > MAX_FUNCTION_LINES:
                too_long.append(f"{_relative(path)}:{line} {name}: {length} lines")
    assert not too_long, f"Functions over {MAX_FUNCTION_LINES} lines (split them):\n" + "\n".join(too_long)


def test_function_lengths_on_a_small_source():
    source = textwrap.dedent(
        '''\
        import functools


        @functools.cache
        def documented(
            x,
        ):
            """Summary.

            More words.
            """
            # A comment counts.

            return x


        class Model:
            def method(self):
                """One-line docstring."""

                def nested():
                    return 1

                return nested()

            async def fetch(self): ...


        def one_liner(): """Only a docstring."""
        '''
    )
    assert function_lengths(source) == [
        ("documented", 5, 6),  # def (3 lines), comment, blank, return
        ("Model.method", 18, 6),  # def, blank, nested (2 lines), blank, return
        ("Model.method.nested", 21, 2),
        ("Model.fetch", 26, 1),
        ("one_liner", 29, 1),
    ]
