"""The modules of `autosimulate_tf` import each other without cycles.

The graph is built by static analysis (`ast` over the `.py` files), so nothing is imported
and a lazy import inside a function counts as much as a top-level one: a cycle hidden behind
a lazy import still means two modules that cannot be understood, tested or moved apart.

Graph: an edge A -> B when the source of module A imports module B, where B is the module
file the import resolves to:
- `import pkg.mod` -> `pkg.mod`.
- `from pkg import name` -> `pkg.name` when that is a module file, else `pkg` (the package's
  `__init__`). Resolving re-exported names to `__init__` only when no such submodule exists
  keeps `__init__` re-exports from producing trivial false cycles.
- Relative imports resolve against the importing module's package.

Python runs every parent package's `__init__` before a submodule, but that implicit step is
not an edge: `data/__init__` importing `data.backends` and `data.backends` importing
`data.pipeline` is not a cycle. An explicit import of a parent package by its own submodule
(`from autosimulate_tf.data import render_latents` inside `data/backends.py`) is an edge, and
with the `__init__` importing that submodule it is a cycle. A module importing itself is
harmless and dropped.
"""

import ast
import pathlib
import textwrap

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "autosimulate_tf"


def module_files(package_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Maps every dotted module name under `package_dir` to its file.

    A package is named by its directory (`pkg.sub` for `pkg/sub/__init__.py`).
    """
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _longest_known_prefix(dotted_name: str, modules: dict[str, pathlib.Path]) -> str | None:
    """The module `import dotted_name` lands in: the name itself, or its nearest known parent."""
    parts = dotted_name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _from_import_base(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module name that `from <base> import ...` refers to."""
    if node.level == 0:
        return node.module or ""
    # A package's `__init__` is its own anchor for `from . import x`; a plain module's
    # anchor is the package that contains it.
    anchor = importer.split(".") if is_package else importer.split(".")[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def imported_modules(importer: str, modules: dict[str, pathlib.Path]) -> set[str]:
    """Every module of the package that `importer`'s source imports, anywhere in the file."""
    path = modules[importer]
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(_longest_known_prefix(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _from_import_base(node, importer, is_package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else _longest_known_prefix(base, modules))
    targets.discard(None)  # third-party and standard-library imports
    targets.discard(importer)
    return targets


def import_graph(package_dir: pathlib.Path) -> dict[str, set[str]]:
    """Edges A -> B for every module A of the package whose source imports module B."""
    modules = module_files(package_dir)
    return {name: imported_modules(name, modules) for name in modules}


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in discovery order over sorted nodes."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = lowlink[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is None:
                work.pop()
                if work:
                    lowlink[work[-1][0]] = min(lowlink[work[-1][0]], lowlink[node])
                if lowlink[node] == index[node]:
                    component = []
                    while not component or component[-1] != node:
                        component.append(stack.pop())
                        on_stack.discard(component[-1])
                    components.append(sorted(component))
            elif successor not in index:
                index[successor] = lowlink[successor] = len(index)
                stack.append(successor)
                on_stack.add(successor)
                work.append((successor, iter(sorted(graph[successor]))))
            elif successor in on_stack:
                lowlink[node] = min(lowlink[node], index[successor])
    return components


def _cycle_within(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One cycle through the first node of a strongly connected component, by breadth-first search."""
    start = component[0]
    members = set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for successor in sorted(graph[node] & members):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if successor not in parents:
                    parents[successor] = node
                    next_frontier.append(successor)
        frontier = next_frontier
    raise AssertionError(f"{component} is not a cycle")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first node repeated at the end) for every group of mutually importing modules."""
    return [_cycle_within(component, graph) for component in strongly_connected_components(graph) if len(component) > 1]


def format_cycles(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_package_has_no_import_cycles():
    cycles = find_cycles(import_graph(PACKAGE_DIR))
    assert not cycles, "Import cycles between autosimulate_tf modules:\n" + format_cycles(cycles)


def _write_package(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for relative_path, source in files.items():
        path = root / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / "toy"


def test_checker_finds_a_cycle_hidden_in_a_lazy_import(tmp_path):
    package_dir = _write_package(
        tmp_path,
        {
            "toy/__init__.py": "from toy.data import render\n",
            "toy/data/__init__.py": "from toy.data.backends import Backend\n",
            "toy/data/backends.py": "from toy.data import pipeline\n\nclass Backend: ...\n",
            "toy/data/pipeline.py": """\
                def render():
                    from toy.data import backends  # lazy, still an edge
                    return backends.Backend()
            """,
        },
    )
    cycles = find_cycles(import_graph(package_dir))
    assert format_cycles(cycles) == "toy.data.backends -> toy.data.pipeline -> toy.data.backends"


def test_checker_passes_a_clean_package_with_init_reexports(tmp_path):
    # `__init__` files import their submodules and submodules import siblings through the
    # package name; Python runs `toy/data/__init__` before `toy.data.rendering`, but that
    # implicit step is not an edge.
    package_dir = _write_package(
        tmp_path,
        {
            "toy/__init__.py": "import toy.data\n",
            "toy/data/__init__.py": "from toy.data.backends import Backend\nfrom toy.data.rendering import render\n",
            "toy/data/backends.py": "import os\nfrom toy.data.rendering import render\n\nclass Backend: ...\n",
            "toy/data/rendering.py": "from toy import errors\n\ndef render(): ...\n",
            "toy/errors.py": "class Error(Exception): ...\n",
        },
    )
    graph = import_graph(package_dir)
    assert graph["toy.data"] == {"toy.data.backends", "toy.data.rendering"}
    assert graph["toy.data.rendering"] == {"toy.errors"}
    assert find_cycles(graph) == []


def test_checker_counts_a_submodule_importing_its_own_package(tmp_path):
    package_dir = _write_package(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/data/__init__.py": "from toy.data.backends import Backend\n\ndef render(): ...\n",
            "toy/data/backends.py": "from toy.data import render\n\nclass Backend: ...\n",
        },
    )
    cycles = find_cycles(import_graph(package_dir))
    assert format_cycles(cycles) == "toy.data -> toy.data.backends -> toy.data"


def test_checker_resolves_relative_imports(tmp_path):
    package_dir = _write_package(
        tmp_path,
        {
            "toy/__init__.py": "from . import data\n",
            "toy/errors.py": "",
            "toy/data/__init__.py": "from .pipeline import render\n",
            "toy/data/pipeline.py": "from .. import errors\nfrom . import backends\n\ndef render(): ...\n",
            "toy/data/backends.py": "from ..data.pipeline import render\n",
        },
    )
    graph = import_graph(package_dir)
    assert graph["toy"] == {"toy.data"}
    assert graph["toy.data"] == {"toy.data.pipeline"}
    assert graph["toy.data.pipeline"] == {"toy.errors", "toy.data.backends"}
    assert format_cycles(find_cycles(graph)) == "toy.data.backends -> toy.data.pipeline -> toy.data.backends"
