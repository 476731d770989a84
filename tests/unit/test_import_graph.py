"""The modules of ``ops_warehouse`` import each other without circles.

The graph is read from the source with ``ast``, not by importing: an edge for every
``import`` / ``from … import`` of an ``ops_warehouse`` module, at module level and inside
functions alike (an import moved into a function to dodge a circle is still a circle).
Imports under ``if TYPE_CHECKING:`` are left out: they never run.

``from ops_warehouse.x import y`` is an edge to ``ops_warehouse.x.y`` when that is a module,
else to ``ops_warehouse.x``. Importing a submodule also runs its package's ``__init__``, but
that implicit step is not an edge: a package whose ``__init__`` imports its own submodules is
fine, unless one of them (or a module it reaches) imports from the package's namespace again.

The modules are whatever lies under the package's folder when the test runs, so subpackages
may come and go (or move to another top-level package) without touching this test.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import ops_warehouse

PACKAGE = ops_warehouse.__name__
ROOT = Path(ops_warehouse.__file__).parent

Graph = dict[str, set[str]]


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module under ``root``, by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((package, *parts))] = path
    return modules


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements below ``node``, without those under ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: Iterable[ast.AST] = node.orelse
    else:
        children = ast.iter_child_nodes(node)
    for child in children:
        yield from _imports(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (its source at ``path``) imports."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {target for target in found if target in modules and target != name}


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> Graph:
    files = module_files(root, package)
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (as a path that ends where it starts) per edge that closes one, found by a
    depth-first search in sorted order; empty when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the search path, then "done"
    path: list[str] = []
    found = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_graph_is_read_from_every_module():
    graph = import_graph()
    publish, audit = f"{PACKAGE}.warehouse.publish", f"{PACKAGE}.pipeline.audit"
    tasks, results = f"{PACKAGE}.airflow.tasks", f"{PACKAGE}.pipeline.quality.results"
    assert publish in graph and f"{PACKAGE}.settings" in graph
    assert results in graph, "subpackages are walked"
    assert audit in graph[publish], "module-level imports count"
    assert publish in graph[tasks], "imports inside functions count"
    assert results not in graph[tasks], "imports only for type checkers are left out"


def test_edges_resolve_relative_imports_and_from_imports_of_modules(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from pkg.sub import b\n"  # a module: the edge goes to pkg.sub.b
        "if TYPE_CHECKING:\n"
        "    from pkg import c\n"
        "def f():\n"
        "    try:\n"
        "        import pkg.c\n"
        "    except ImportError:\n"
        "        from pkg.sub import NAME\n"  # not a module: the edge goes to pkg.sub
    )
    (pkg / "c.py").write_text("from .a import f\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\nNAME = 1\n")
    (pkg / "sub" / "b.py").write_text("from ..c import x\nfrom os import path\n")
    assert import_graph(pkg, "pkg") == {
        "pkg": set(),
        "pkg.a": {"pkg.sub.b", "pkg.c", "pkg.sub"},
        "pkg.c": {"pkg.a"},
        "pkg.sub": {"pkg.sub.b"},
        "pkg.sub.b": {"pkg.c"},
    }
    assert cycles(import_graph(pkg, "pkg")) == [["pkg.a", "pkg.c", "pkg.a"]]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles in ops_warehouse:\n" + "\n".join(
        " -> ".join(cycle) for cycle in found
    )
