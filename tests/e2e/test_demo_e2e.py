"""`ops-demo` (`make demo`) end to end on a small world: Airflow runs every DAG; a rerun changes nothing."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ops_warehouse.pipeline.contracts import ENTITIES
from ops_warehouse.settings import Settings
from tests.helpers import raw_snapshot, source_snapshot

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ops-demo"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_demo_runs_every_dag_and_is_idempotent(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    env.update(
        OPS_HOME=str(home), OPS_DEMO_SCALE="0.03", OPS_DEMO_PORT=str(_free_port()), COLUMNS="160"
    )
    first = _run_demo(env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    for dag_id in ("ingest_marketing", "ingest_sales", "ingest_support", "transform"):
        assert f"✓ {dag_id}" in first.stdout
    assert "What was loaded" in first.stdout and "working.duckdb" in first.stdout

    settings = dataclasses.replace(
        Settings.from_env(), home=home, warehouse_path=home / "warehouse" / "working.duckdb"
    )
    world_dir = home / "demo"
    source, raw = source_snapshot(world_dir), raw_snapshot(settings)
    assert raw == source
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        views = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'staging'"
            ).fetchall()
        }
        assert {f"stg_{e.source}__" for e in ENTITIES} <= {v.split("__")[0] + "__" for v in views}
        staged_orders = con.execute("select count(*) from staging.stg_sales__orders").fetchone()[0]
    assert staged_orders == len(source["orders"])

    second = _run_demo(env)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "Using the demo world" in second.stdout
    assert raw_snapshot(settings) == raw
