"""BI tools that bundle an older DuckDB (1.x) open the published file: the publish writes it
in the storage format of ``OPS_PUBLISHED_STORAGE_VERSION`` (default v1.0.0).

Each client is a real DuckDB 1.x in its own environment (``uv venv`` + ``uv pip install``,
from the package registry or uv's cache), reading the file in a child process.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from ops_warehouse.warehouse import readers
from tests.bi.conftest import base_orders, publish_generation
from tests.helpers import MART_TABLES

# the oldest DuckDB that reads a v1.0.0 file of this warehouse (1.0 cannot read the primary
# keys DuckDB 2 writes into audit's tables), and the newest 1.x, which Superset's duckdb
# extra installs
CLIENTS = ("duckdb>=1.1,<1.2", "duckdb<2")

# every table of the file: its rows, and the money totals BI tools show first
CLIENT = textwrap.dedent(
    """
    import json, sys
    import duckdb
    con = duckdb.connect()
    con.execute("attach '" + sys.argv[1].replace("'", "''") + "' as published (read_only)")
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() "
        "where database_name = 'published' order by all"
    ).fetchall()
    out = {"version": duckdb.__version__, "rows": {}}
    for schema, table in tables:
        out["rows"][f"{schema}.{table}"] = con.execute(
            f'select count(*) from published.{schema}."{table}"'
        ).fetchone()[0]
    out["net_revenue"] = [
        str(con.execute(f"select sum(net_revenue) from published.marts.{t}").fetchone()[0])
        for t in ("kpi_daily", "fct_orders", "retention_cohorts")
    ]
    print(json.dumps(out))
    """
)


def uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


@pytest.fixture(scope="session")
def duckdb_client(tmp_path_factory):
    """``python`` of an environment holding the DuckDB a requirement names, one per requirement."""
    made: dict[str, Path] = {}

    def python(requirement: str) -> Path:
        if requirement not in made:
            venv = tmp_path_factory.mktemp("duckdb_client")
            subprocess.run([*uv(), "venv", "--quiet", "--python", "3.11", str(venv)], check=True)
            subprocess.run(
                [*uv(), "pip", "install", "--quiet", "--python", str(venv), requirement],
                check=True,
                timeout=600,
            )
            made[requirement] = venv / "bin" / "python"
        return made[requirement]

    return python


def read_as_client(python: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-c", CLIENT, str(path)], capture_output=True, text=True, timeout=300
    )


def expected(settings) -> dict:
    with readers.connect_published(settings) as con:
        rows = {
            f"{schema}.{table}": con.execute(f'select count(*) from {schema}."{table}"').fetchone()[
                0
            ]
            for schema, table in con.execute(
                "select schema_name, table_name from duckdb_tables() "
                "where database_name = 'published'"
            ).fetchall()
        }
        totals = [
            str(con.execute(f"select sum(net_revenue) from marts.{t}").fetchone()[0])
            for t in ("kpi_daily", "fct_orders", "retention_cohorts")
        ]
    return {"rows": rows, "net_revenue": totals}


@pytest.mark.parametrize("requirement", CLIENTS)
def test_duckdb_1x_reads_every_mart_of_the_published_file(bi_settings, duckdb_client, requirement):
    assert bi_settings.published_storage_version == "v1.0.0", "the default the README names"
    publish_generation(bi_settings, base_orders(bi_settings), 1)
    # the next publish writes only fct_orders' changed rows into that file (deletes, inserts)
    with duckdb.connect(str(bi_settings.warehouse_path)) as con:
        con.execute(
            "update marts.fct_orders set net_revenue = net_revenue + 1 "
            "where order_id in (select order_id from marts.fct_orders limit 3)"
        )
    publish_generation(bi_settings, base_orders(bi_settings), 2)
    python = duckdb_client(requirement)

    result = read_as_client(python, bi_settings.published_path)

    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout)
    assert seen["version"].startswith("1."), seen["version"]
    want = expected(bi_settings)
    assert {f"marts.{t}" for t in MART_TABLES} <= set(want["rows"]), want["rows"]
    assert seen["rows"] == want["rows"], f"DuckDB {seen['version']} read other row counts"
    assert seen["net_revenue"] == want["net_revenue"]


def test_the_newest_storage_format_shuts_duckdb_1x_out(bi_settings, duckdb_client):
    """The setting is what lets them in: the format of the DuckDB that writes is refused."""
    newest = dataclasses.replace(
        bi_settings, published_storage_version=f"v{duckdb.__version__.split('-')[0]}"
    )
    publish_generation(newest, base_orders(newest), 1)

    result = read_as_client(duckdb_client(CLIENTS[-1]), newest.published_path)

    assert result.returncode != 0, "DuckDB 1.x opened a file in DuckDB 2's own format"
    assert "storage" in result.stderr.lower() or "version" in result.stderr.lower()
