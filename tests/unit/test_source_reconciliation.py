"""Per-load reconciliation with the source: counts in the audit trail, a gap blocks the load."""

from __future__ import annotations

import duckdb
import pytest

from ops_warehouse.airflow.tasks import LoadBlocked, run_load
from tests.conftest import UNTIL
from tests.helpers import day_window, source_snapshot

SOURCES = ("marketing", "sales", "support")


@pytest.fixture
def patched(settings, monkeypatch):
    monkeypatch.setattr("ops_warehouse.settings.get_settings", lambda: settings)
    return settings


def _load(source: str, run_id: str) -> dict:
    window = day_window(UNTIL)
    return run_load(source, window.start, window.end, run_id)


def _entities(settings, run_id: str) -> dict[str, tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        rows = con.execute(
            "select entity, rows_read, source_rows, raw_rows from audit.pipeline_run_entities"
            " where run_id = ?",
            [run_id],
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_counts_of_source_and_raw_are_recorded_per_entity(patched, world_dir):
    for source in SOURCES:
        _load(source, f"first_{source}")
    expected = {name: len(rows) for name, rows in source_snapshot(world_dir).items()}
    recorded = {}
    for source in SOURCES:
        recorded |= _entities(patched, f"first_{source}")
    # the shop counts its rows: every one of them is in raw (the demo world has no bad rows)
    for name in ("customers", "products", "orders", "order_items", "refunds", "fx_rates"):
        assert recorded[name] == (expected[name], expected[name], expected[name]), name
    # full reads and sheets: what was read is the source's whole content
    for name in ("campaigns", "agents", "budget", "kpi_targets"):
        assert recorded[name] == (expected[name], expected[name], expected[name]), name
    # incremental API entities: the generic API cannot tell
    for name in ("tickets", "ticket_events", "time_entries", "signups", "ad_performance"):
        read, source_rows, raw_rows = recorded[name]
        assert source_rows is None and raw_rows == expected[name], name


def test_a_gap_between_source_and_raw_blocks_the_load(patched):
    _load("sales", "first")
    with duckdb.connect(str(patched.warehouse_path)) as con:
        con.execute(
            "delete from raw_sales.orders where order_id in (select order_id from raw_sales.orders limit 7)"
        )
    with pytest.raises(LoadBlocked) as blocked:
        _load("sales", "second")  # reads from the warehouse's cursor: the 7 orders stay missing
    message = str(blocked.value)
    assert "sales.orders" in message and "7 missing" in message, message
    with duckdb.connect(str(patched.warehouse_path), read_only=True) as con:
        status, text = con.execute(
            "select status, message from audit.pipeline_runs where run_id = 'second'"
        ).fetchone()
    assert status == "failed" and "sales.orders" in text
    assert _entities(patched, "second")["orders"][2] == _entities(patched, "first")["orders"][2] - 7
