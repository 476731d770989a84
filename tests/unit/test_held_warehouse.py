"""The working DuckDB file held open for a block (engines.DuckDB.held): one open instead of
one per read or write, the same rows, and nothing left open after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from ops_warehouse import settings as settings_module
from ops_warehouse.airflow import tasks as pipeline_tasks
from ops_warehouse.warehouse import engines
from ops_warehouse.warehouse.engines import engine
from tests.conftest import UNTIL, make_settings
from tests.helpers import raw_snapshot, source_snapshot


@pytest.fixture
def opens(monkeypatch):
    """The paths ``duckdb.connect`` opened, in order: the calls made while no connection of
    this process held the path (a call while one does shares its database, opens nothing)."""
    seen: list[str] = []
    real = duckdb.connect

    def counted(database=":memory:", *args, **kwargs):
        if str(database) not in engines._HELD:
            seen.append(str(database))
        return real(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counted)
    return seen


@pytest.fixture
def bare(tmp_path):
    """Settings with a working file and no sources: what ``held`` needs."""
    settings = make_settings(tmp_path / "home", tmp_path / "world", "http://127.0.0.1:9")
    with engine(settings).transaction() as con:
        con.execute("create table t (n integer)")
    return settings


def test_reads_and_writes_while_held_share_one_open(bare, opens):
    warehouse, path = engine(bare), str(bare.warehouse_path)
    with warehouse.held():
        for n in range(3):
            with warehouse.transaction() as con:
                con.execute("insert into t values (?)", [n])
            with warehouse.read_only() as con:
                assert con.execute("select count(*) from t").fetchone()[0] == n + 1
        with warehouse.held():  # reentrant: no second open
            with warehouse.validation_reader() as con:
                assert con.execute("select sum(n) from t").fetchone()[0] == 3
    assert opens.count(path) == 1
    # let go: the file opens read-only again in this process (a held read-write database
    # left behind would refuse it: one configuration per file and process), with the rows
    with duckdb.connect(path, read_only=True) as con:
        assert con.execute("select count(*), sum(n) from t").fetchone() == (3, 3)


def test_held_sessions_read_dates_in_utc_whatever_the_host_zone(bare):
    """dlt sets UTC on the database it shares while held; the hold sets it from the start,
    as dbt's profile does, so no statement of the block sees the host's zone."""
    warehouse = engine(bare)
    with warehouse.held(), warehouse.read_only() as con:
        con.execute("set TimeZone = 'America/Los_Angeles'")  # this cursor only
        with warehouse.read_only() as other:
            assert other.execute("select current_setting('TimeZone')").fetchone()[0] == "UTC"
            day = other.execute(
                "select cast(timestamptz '2026-11-22 03:00:00+00' as date)"
            ).fetchone()[0]
    assert day.isoformat() == "2026-11-22"


def test_a_failed_transaction_while_held_is_rolled_back(bare):
    warehouse = engine(bare)
    with warehouse.held():
        with pytest.raises(RuntimeError), warehouse.transaction() as con:
            con.execute("insert into t values (41)")
            raise RuntimeError("half-way")
        with warehouse.transaction() as con:
            con.execute("insert into t values (42)")
    with warehouse.read_only() as con:
        assert con.execute("select list(n) from t").fetchone()[0] == [42]


def test_an_exception_in_the_block_still_lets_go(bare):
    warehouse = engine(bare)
    with pytest.raises(ValueError), warehouse.held():
        raise ValueError("stop")
    with duckdb.connect(str(bare.warehouse_path), read_only=True) as con:
        assert con.execute("select count(*) from t").fetchone()[0] == 0


def test_ingest_tasks_open_the_file_once_and_load_every_row(
    settings, world_dir, server, monkeypatch, opens
):
    """run_load, the ingest task's body, holds the file: dlt's connections share it, and raw
    ends equal to the source as served."""
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    start = datetime(UNTIL.year, UNTIL.month, UNTIL.day, tzinfo=UTC)
    path = str(settings.warehouse_path)
    for source in ("marketing", "sales", "support"):
        before = opens.count(path)
        pipeline_tasks.run_load(source, start, start + timedelta(days=1), f"held_{source}")
        # the task's hold only (it opened the file about 20 times before it held it), and
        # nothing held once the task is over
        assert opens.count(path) - before == 1, source
        assert not engines._HELD
    source_rows, raw = source_snapshot(world_dir), raw_snapshot(settings)
    for name, rows in source_rows.items():
        assert raw.get(name) == rows, f"raw {name} differs from the source"
