"""Full build or incremental day (pipeline/run_mode.py), and the setting that decides it."""

from __future__ import annotations

import dataclasses
from datetime import date

import duckdb
import pytest

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline.run_mode import requested_in, run_mode
from ops_warehouse.settings import Settings
from tests.conftest import make_settings

SUNDAY, MONDAY, SATURDAY = date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 28)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path, tmp_path / "world", "http://127.0.0.1:1")


def test_sunday_is_a_full_build_by_default(settings):
    assert settings.full_rebuild_weekdays == frozenset({6})
    assert run_mode(settings, SUNDAY).full
    assert not run_mode(settings, MONDAY).full
    assert not run_mode(settings, SATURDAY).full


@pytest.mark.parametrize(
    ("value", "weekdays"),
    [("sat,sun", {5, 6}), ("Monday", {0}), ("all", set(range(7))), ("none", set())],
)
def test_full_rebuild_days_setting(monkeypatch, value, weekdays):
    monkeypatch.setenv("OPS_FULL_REBUILD_DAYS", value)
    assert Settings.from_env().full_rebuild_weekdays == frozenset(weekdays)


@pytest.mark.parametrize("value", ["sunday,funday", "", ","])
def test_full_rebuild_days_refuses_what_is_no_weekday(monkeypatch, value):
    monkeypatch.setenv("OPS_FULL_REBUILD_DAYS", value or ",")
    with pytest.raises(OpsWarehouseError, match="OPS_FULL_REBUILD_DAYS"):
        Settings.from_env()


def test_the_runs_conf_overrides_the_weekday(settings):
    assert not run_mode(settings, SUNDAY, requested=requested_in({"full_rebuild": False})).full
    assert run_mode(settings, MONDAY, requested=requested_in({"full_rebuild": "true"})).full
    assert requested_in({}) is None and requested_in(None) is None
    with pytest.raises(ValueError, match="full_rebuild"):
        requested_in({"full_rebuild": "sometimes"})


def test_a_warehouse_older_than_the_watermarks_gets_a_full_build(settings):
    settings.warehouse_path.parent.mkdir(parents=True)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("create schema intermediate")
    con.execute("create table intermediate.int_orders_converted (order_id text)")
    con.close()
    mode = run_mode(settings, MONDAY)
    assert mode.full and "int_orders_converted" in mode.reason
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(
        "alter table intermediate.int_orders_converted add column _inputs_loaded_at timestamptz"
    )
    con.close()
    assert not run_mode(settings, MONDAY).full
    never = dataclasses.replace(settings, full_rebuild_weekdays=frozenset())
    assert not run_mode(never, SUNDAY).full


def test_a_mart_older_than_the_not_null_constraints_gets_a_full_build(settings):
    """An incremental day leaves the marts' not_null tests to the tables' NOT NULL constraints
    (dbt_project/selectors.yml); an incremental mart built before them keeps its table, so the
    first run after the upgrade is a full build. Views (no constraints) do not count."""
    settings.warehouse_path.parent.mkdir(parents=True)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("create schema marts")
    con.execute("create table marts.fct_orders (order_id bigint not null, cogs decimal(18, 2))")
    con.execute("create table marts.fct_tickets (ticket_id bigint, status text)")
    con.execute("create view marts.tickets_view as select * from marts.fct_tickets")
    con.close()
    mode = run_mode(settings, MONDAY)
    assert mode.full and "marts.fct_tickets predate(s) the NOT NULL constraints" in mode.reason
    assert "fct_orders" not in mode.reason and "tickets_view" not in mode.reason
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("drop view marts.tickets_view")
    con.execute("drop table marts.fct_tickets")
    con.execute("create table marts.fct_tickets (ticket_id bigint not null, status text)")
    con.close()
    assert not run_mode(settings, MONDAY).full


def test_on_spark_the_days_decide_the_tests_and_checks(settings):
    """Spark writes every model whole either way; the mode still picks dbt's daily tests and
    the checks of the day's rows on a weekday, everything on Sunday. No watermark is asked of
    Spark's tables (an unreachable Thrift port here: nothing may connect)."""
    on_spark = dataclasses.replace(settings, warehouse="spark", spark_thrift_port=1)
    assert run_mode(on_spark, SUNDAY).full
    assert not run_mode(on_spark, MONDAY).full
    assert run_mode(on_spark, MONDAY, requested=True).full
