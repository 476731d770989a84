"""`ops-demo` (`make demo`) end to end on a small world: Airflow runs every DAG; a rerun changes nothing."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from ops_warehouse.pipeline.contracts import ENTITIES
from ops_warehouse.settings import Settings
from tests.helpers import raw_snapshot, run_demo, source_snapshot

# Airflow's own scheduler and API server, every DAG: a served stack, with the other deployments'
# tests in `make test-deploy`
pytestmark = [pytest.mark.e2e, pytest.mark.deploy]


def test_demo_runs_every_dag_and_is_idempotent(tmp_path):
    home = tmp_path / "home"
    first = run_demo(home, "0.03", timeout=900)
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

    second = run_demo(home, "0.03", timeout=900)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "Using the demo world" in second.stdout
    assert raw_snapshot(settings) == raw
