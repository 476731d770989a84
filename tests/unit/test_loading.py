"""Loaders against the demo server and shop database: completeness, increments, faults, crashes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from ops_warehouse.errors import SourceConfigError, SourceSchemaError
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources.window import Window
from tests.conftest import UNTIL, make_settings
from tests.helpers import duplicate_keys, raw_snapshot, source_snapshot

SOURCES = ("marketing", "sales", "support")


def day_window(day: date) -> Window:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Window(start, start + timedelta(days=1))


def load_all(settings, day: date = UNTIL) -> None:
    for source in SOURCES:
        load_source(source, day_window(day), settings=settings, run_id=f"test__{day}")


def test_initial_load_equals_source(settings, world_dir):
    load_all(settings)
    source, raw = source_snapshot(world_dir), raw_snapshot(settings)
    for name, rows in source.items():
        assert len(rows) > 0, f"the demo world has no {name}"
        assert raw[name] == rows, f"raw {name} differs from the source"
    assert set(duplicate_keys(settings).values()) == {0}


def _load_and_report_telemetry(settings, queue) -> None:
    """In a new interpreter: one load, then what dlt's telemetry holds."""
    import threading

    from dlt.common.runtime import anon_tracker, telemetry

    os.environ.pop("RUNTIME__DLTHUB_TELEMETRY", None)  # as in a task process: not set
    load_source("marketing", day_window(UNTIL), settings=settings, run_id="test__telemetry")
    threads = [t.name for t in threading.enumerate()]
    queue.put((telemetry.is_telemetry_started(), anon_tracker._ANON_TRACKER_ENDPOINT, threads))


def test_a_load_starts_no_usage_telemetry(settings):
    """dlt's anonymous usage telemetry stays off (docs/security.md). dlt decides once per
    process, when its runtime is first set up, so the load runs in a new interpreter: after
    it, dlt's runtime is set up, no tracker endpoint is set and no tracker thread runs."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_load_and_report_telemetry, args=(settings, queue))
    child.start()
    try:
        started, endpoint, threads = queue.get(timeout=300)
    finally:
        child.join(timeout=60)
    assert started  # dlt did set up its runtime during the load
    assert endpoint is None
    assert not [name for name in threads if name.startswith("anon_tracker")], threads


def test_rerun_of_same_interval_changes_nothing(settings):
    load_all(settings)
    first = raw_snapshot(settings)
    load_all(settings)
    assert raw_snapshot(settings) == first


def test_incremental_days_pick_up_new_and_updated_rows(settings, world_dir, server):
    from ops_demo import world

    load_all(settings)
    before = raw_snapshot(settings)
    world.advance(world_dir, days=3)
    for offset in (1, 2, 3):
        load_all(settings, UNTIL + timedelta(days=offset))
    source, raw = source_snapshot(world_dir), raw_snapshot(settings)
    for name, rows in source.items():
        assert raw[name] == rows, f"raw {name} differs from the advanced source"
    assert set(duplicate_keys(settings).values()) == {0}
    # the world really changed: new rows, updated rows (orders change status) and restated ads
    assert len(raw["orders"]) > len(before["orders"])
    old_orders = {r[0]: r for r in before["orders"]}
    assert any(old_orders.get(r[0]) not in (None, r) for r in raw["orders"]), "no order was updated"
    old_ads = {(r[0], r[2]): r for r in before["ad_performance"]}
    restated = [r for r in raw["ad_performance"] if old_ads.get((r[0], r[2])) not in (None, r)]
    assert restated and {r[0] for r in restated} <= {
        (UNTIL - timedelta(days=d)).isoformat() for d in range(3)
    }


def test_faults_do_not_change_the_result(tmp_path, world_dir, server):
    # small pages: many requests, so every fault kind is hit
    clean = make_settings(tmp_path / "clean", world_dir, server.url, page_size=40)
    load_all(clean)
    server.configure(
        fault_rate=0.2,
        faults=["429", "500", "502", "503", "timeout"],
        retry_after_s=0,
        timeout_s=2.5,
        seed=3,
    )
    faulty = make_settings(
        tmp_path / "faulty", world_dir, server.url, page_size=40, http_timeout_s=1.0
    )
    load_all(faulty)
    stats = server.stats()
    assert raw_snapshot(faulty) == raw_snapshot(clean)
    injected = stats.get("faults", {})
    assert sum(injected.values()) > 0, stats
    assert {"429", "500", "502", "503", "timeout"} <= set(injected), injected


def _load_forever(settings):
    load_all(settings)


def _requests(server) -> int:
    return sum(server.stats()["requests"].values())


@pytest.mark.parametrize("kill_at", [0.3, 0.7])
def test_killed_load_resumes_to_identical_result(tmp_path, world_dir, server, kill_at):
    reference = make_settings(tmp_path / "reference", world_dir, server.url, page_size=25)
    before = _requests(server)
    load_all(reference)
    total = _requests(server) - before
    victim = make_settings(tmp_path / "victim", world_dir, server.url, page_size=25)
    server.configure(slow_ms=30)  # keeps the victim in flight while we watch its progress
    start = _requests(server)
    proc = multiprocessing.get_context("fork").Process(target=_load_forever, args=(victim,))
    proc.start()
    deadline = time.monotonic() + 120
    while _requests(server) - start < total * kill_at and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.is_alive(), "the load finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    server.configure(slow_ms=0)
    load_all(victim)
    assert raw_snapshot(victim) == raw_snapshot(reference)


@pytest.mark.parametrize(
    "source,setting",
    [("marketing", "OPS_MARKETING_API_TOKEN"), ("support", "OPS_SUPPORT_API_TOKEN")],
)
def test_wrong_token_fails_fast_naming_source_and_setting(settings, source, setting):
    import dataclasses

    bad = dataclasses.replace(settings, **{f"{source}_api_token": "wrong"})
    started = time.monotonic()
    with pytest.raises(SourceConfigError) as err:
        load_source(source, day_window(UNTIL), settings=bad)
    assert time.monotonic() - started < 5
    assert source in str(err.value) and setting in str(err.value)


def test_missing_required_field_stops_and_keeps_raw(settings, server):
    load_all(settings)
    before = raw_snapshot(settings)
    server.configure(schema={"signups": {"rename": {"email": "email_address"}}})
    with pytest.raises(SourceSchemaError) as err:
        load_source("marketing", day_window(UNTIL + timedelta(days=1)), settings=settings)
    message = str(err.value)
    assert "marketing" in message and "signups" in message and "'email'" in message
    assert "email_address" in message
    assert raw_snapshot(settings) == before


def test_schema_drift_blocks_the_load_without_retry_and_leaves_published_unchanged(
    settings, server, monkeypatch
):
    """Through the ingest task's body: a renamed required field fails the task at once
    (no retry can fix it), raw stays as it was and the published file is byte-identical."""
    import hashlib

    from airflow.sdk.exceptions import AirflowFailException

    from ops_warehouse import settings as settings_module
    from ops_warehouse.airflow import tasks as pipeline_tasks
    from ops_warehouse.pipeline import audit
    from ops_warehouse.warehouse import publish

    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    load_all(settings)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.kpi_daily as select 1 as kpi_day_placeholder")
    published = publish.publish(settings, audit.RunInfo("transform", "before_drift"))
    published_hash = hashlib.sha256(open(published, "rb").read()).hexdigest()
    before = raw_snapshot(settings)

    server.configure(schema={"tickets": {"rename": {"status": "state"}}})
    start = datetime(2026, 11, 23, tzinfo=UTC)
    with pytest.raises(AirflowFailException) as err:
        pipeline_tasks.run_load("support", start, start + timedelta(days=1), "drift_run")
    assert isinstance(err.value, pipeline_tasks.LoadBlocked)
    message = str(err.value)
    assert "support" in message and "tickets" in message and "'status'" in message

    assert raw_snapshot(settings) == before
    assert hashlib.sha256(open(published, "rb").read()).hexdigest() == published_hash
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        status = con.execute(
            "select status from audit.pipeline_runs where run_id = 'drift_run'"
        ).fetchall()
    assert status == [("failed",)]


def test_new_field_is_loaded_not_dropped(settings, server):
    server.configure(schema={"tickets": {"add": {"sentiment": "calm"}}})
    load_source("support", day_window(UNTIL), settings=settings)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        values = con.execute("select distinct sentiment from raw_support.tickets").fetchall()
    assert values == [("calm",)]


def test_zero_length_interval_loads_the_day_ending_at_it():
    end = datetime(2026, 11, 23, tzinfo=UTC)
    window = Window.of(end, end)
    assert window.start == end - timedelta(days=1) and window.last_day == date(2026, 11, 22)
