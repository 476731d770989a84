"""The package's rooms keep their walls.

- Only ``ops_warehouse.warehouse`` tells the engines apart: no module elsewhere compares
  ``settings.warehouse`` (the engine setting) with anything; they ask the engine adapter
  (``warehouse/engines.py``) instead, so a gap between DuckDB and PostgreSQL shows up there.
- Only ``ops_warehouse.airflow`` imports Airflow: the pipeline, the warehouse and the
  reports run the same from the command line, from tests and from Airflow's tasks.

The source is read with ``ast``, so an import inside a function counts as well.
"""

from __future__ import annotations

import ast

import pytest

from ops_warehouse.warehouse import engines
from tests.unit.test_import_graph import PACKAGE, module_files


def _modules_outside(room: str) -> dict[str, ast.Module]:
    prefix = f"{PACKAGE}.{room}"
    return {
        name: ast.parse(path.read_text(), str(path))
        for name, path in module_files().items()
        if name != prefix and not name.startswith(prefix + ".")
    }


def _engine_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing ``<something>.warehouse`` (the engine setting) in ``tree``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Attribute) and side.attr == "warehouse":
                    lines.append(node.lineno)
    return lines


def _airflow_imports(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(n == "airflow" or n.startswith("airflow.") for n in names):
            lines.append(node.lineno)
    return lines


def test_only_the_warehouse_room_branches_on_the_engine():
    found = {
        name: lines
        for name, tree in _modules_outside("warehouse").items()
        if (lines := _engine_comparisons(tree))
    }
    assert found == {}, f"ask warehouse.engines.engine(settings) instead: {found}"


def test_only_the_airflow_room_imports_airflow():
    found = {
        name: lines
        for name, tree in _modules_outside("airflow").items()
        if (lines := _airflow_imports(tree))
    }
    assert found == {}, f"move the Airflow glue to ops_warehouse.airflow: {found}"


def test_the_checks_see_what_they_look_for():
    planted = ast.parse(
        "import airflow.sdk\n"
        "def f(settings):\n"
        "    from airflow.providers.smtp.hooks.smtp import SmtpHook\n"
        "    return settings.warehouse == 'duckdb'\n"
    )
    assert _airflow_imports(planted) == [1, 3]
    assert _engine_comparisons(planted) == [4]


@pytest.mark.parametrize("name", engines.ENGINE_NAMES)
def test_every_engine_implements_the_whole_interface(name):
    adapter = engines.adapter(name)
    interface = {
        attr
        for attr, value in vars(engines.Engine).items()
        if callable(value) and not attr.startswith("_")
    }
    missing = {
        attr
        for attr in interface
        if getattr(adapter, attr) is getattr(engines.Engine, attr)
        # defaults that fit an engine whose every layer is in the working warehouse, one
        # whose raw tables keep _loaded_at's range per row group (DuckDB's landing), and one
        # whose connections cost no more than a server's (held: nothing to keep open)
        and attr
        not in (
            "held",
            "validation_reader",
            "layer_reader",
            "models_reader",
            "prepare_build",
            "index_load_marks",
        )
    }
    assert missing == set()
