"""The demo world is a package of its own (ops_demo, in demo/), apart from the product.

The product (src/ops_warehouse, and the DAGs and plugins that production runs) never imports
it; the product's wheel holds ops_warehouse only; the demo reaches the development
environment as a uv workspace member in the `demo` dependency group (part of `dev`).
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import ops_demo
from ops_warehouse.settings import PROJECT_ROOT

PRODUCT_CODE = ("src/ops_warehouse", "dags", "plugins")
DEMO_MODULES = ("ops_demo", "ops_warehouse.demo")


def _is_demo(module: str) -> bool:
    return any(module == m or module.startswith(f"{m}.") for m in DEMO_MODULES)


def demo_references(path: Path) -> list[str]:
    """Imports of the demo in one file, and module names of it given as text
    (``python -m ops_demo.server``, ``importlib.import_module("ops_demo")``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if not node.level else []
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if " " not in node.value else []
        else:
            continue
        found += [f"{path}:{node.lineno}: {n}" for n in names if _is_demo(n)]
    return found


def test_the_product_never_imports_the_demo():
    files = [p for folder in PRODUCT_CODE for p in sorted((PROJECT_ROOT / folder).rglob("*.py"))]
    assert len(files) > 30
    assert [ref for path in files for ref in demo_references(path)] == []
    assert not (PROJECT_ROOT / "src" / "ops_warehouse" / "demo").exists()


def test_the_check_sees_an_import_of_the_demo(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import ops_demo.world\n"
        "def f():\n"
        "    from ops_demo.server import DemoServer\n"
        "cmd = ['python', '-m', 'ops_demo.server']\n"
        "note = 'the demo lives in ops_demo, not here'\n"
    )
    assert [ref.rsplit(": ", 1)[1] for ref in demo_references(sample)] == [
        "ops_demo.world",
        "ops_demo.server",
        "ops_demo.server",
    ]


def test_the_wheel_holds_the_product_only():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "src/ops_warehouse"
    ]
    assert "/demo" in project["tool"]["hatch"]["build"]["targets"]["sdist"]["exclude"]
    assert not any(d.startswith("ops-demo") for d in project["project"]["dependencies"])
    # the demo comes with the development environment only
    assert project["dependency-groups"]["demo"] == ["ops-demo"]
    assert {"include-group": "demo"} in project["dependency-groups"]["dev"]
    assert project["tool"]["uv"]["workspace"]["members"] == ["demo"]
    assert project["tool"]["uv"]["sources"]["ops-demo"] == {"workspace": True}


def test_the_demo_package_is_installed_for_development():
    demo = tomllib.loads((PROJECT_ROOT / "demo" / "pyproject.toml").read_text())
    assert demo["project"]["name"] == "ops-demo"
    assert demo["project"]["scripts"] == {"ops-demo": "ops_demo.cli:main"}
    assert demo["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["ops_demo"]
    assert Path(ops_demo.__file__).resolve().parent == PROJECT_ROOT / "demo" / "ops_demo"
    assert Path(sys.executable).with_name("ops-demo").exists(), "`make install` installs it"
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    assert {"ops-demo", "ops-warehouse"} <= set(lock["manifest"]["members"])
