"""The Great Expectations suites pass on good data and fail, with the right severity and
count, on data that breaks each kind of check (DuckDB through DataFrames, PostgreSQL through
GX's SQL datasource)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import psycopg
import pytest

from ops_warehouse.pipeline.contracts import ENTITIES
from ops_warehouse.pipeline.quality.gx_runner import (
    LAYERS,
    SuiteError,
    _read_suite,
    blocking_failures,
    build_data_docs,
    load_suites,
    run_suites,
    volume_band,
)
from ops_warehouse.pipeline.quality.results import CheckResult
from ops_warehouse.settings import Settings
from tests.dbt.conftest import MARTS_UNTIL

AS_OF = MARTS_UNTIL


def private_copy(built: Settings, home: Path) -> Settings:
    """Settings on a private copy of the built warehouse: the session fixture stays intact."""
    path = home / "warehouse" / "working.duckdb"
    path.parent.mkdir(parents=True)
    shutil.copyfile(built.warehouse_path, path)
    return dataclasses.replace(built, home=home, warehouse_path=path)


def failures(results: list[CheckResult]) -> dict[tuple[str, str, str | None], CheckResult]:
    return {(r.suite, r.check, r.column): r for r in results if not r.success}


def execute(settings: Settings, *statements: str) -> None:
    with duckdb.connect(str(settings.warehouse_path)) as con:
        for sql in statements:
            con.execute(sql)


# --- the suites as data ---------------------------------------------------------------------


def test_every_contract_entity_has_raw_and_staging_suites_matching_the_contract():
    suites = {s.name: s for s in load_suites()}
    for e in ENTITIES:
        raw = suites[f"{e.name}.raw"]
        assert raw.table == f"{e.raw_schema}.{e.name}" and raw.contract == e.name
        schema = [
            x for x in raw.body["expectations"] if x["type"] == "expect_table_columns_to_match_set"
        ]
        assert len(schema) == 1 and schema[0]["meta"]["severity"] == "block"
        assert schema[0]["kwargs"]["column_set"] == e.field_names
        assert schema[0]["kwargs"]["exact_match"] is False
        allowed = {
            x["kwargs"]["column"]: x["kwargs"]["value_set"]
            for x in raw.body["expectations"]
            if x["type"] == "expect_column_values_to_be_in_set"
        }
        assert allowed == {c: list(v) for c, v in (e.allowed or {}).items()}
        assert f"{e.name}.staging" in suites
    assert {s.layer for s in suites.values()} == set(LAYERS)


def test_every_suite_is_valid_gx():
    from great_expectations.core.expectation_suite import ExpectationSuite

    for suite in load_suites():
        gx_suite = ExpectationSuite(**{k: suite.body[k] for k in ("name", "expectations")})
        assert len(gx_suite.expectations) == len(suite.body["expectations"]) > 0


def test_a_suite_without_severity_is_refused(tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    path = folder / "raw.json"
    path.write_text(
        '{"name": "orders.raw", "meta": {"batch": {"table": "raw_sales.orders"}}, "expectations":'
        ' [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]}'
    )
    with pytest.raises(SuiteError, match="meta.severity"):
        _read_suite(path)


def test_volume_band_follows_the_trailing_runs():
    assert volume_band([], 0.2) == (1, None)
    low, high = volume_band([1000, 990, 980], 0.2)
    assert low == 784 and high == 1201


# --- good data passes -----------------------------------------------------------------------


@pytest.mark.parametrize("layer", LAYERS)
def test_every_suite_passes_on_good_data(duckdb_marts, tmp_path, layer):
    settings = dataclasses.replace(duckdb_marts, home=tmp_path)
    results = run_suites(settings, layer, AS_OF, "test__good")
    assert results
    assert {r.suite for r in results} == {s.name for s in load_suites(layer)}
    assert failures(results) == {}, [r.describe() for r in results if not r.success]


# --- broken data fails, with the severity of docs/quality.md -------------------------------------


def test_raw_checks_fail_on_broken_raw_data(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    execute(
        settings,
        # a null key (block; dlt declares keys not null, another loader might not)
        "alter table raw_sales.orders alter column order_id drop not null",
        "update raw_sales.orders set order_id = null "
        "where order_id = (select min(order_id) from raw_sales.orders)",
        # a removed required column (block)
        "alter table raw_sales.order_items drop column unit_price",
        # a new source field (warn)
        "alter table raw_sales.customers add column loyalty_tier varchar",
        # values outside the allowed set (block)
        "update raw_support.tickets set priority = 'critical' "
        "where ticket_id in (select ticket_id from raw_support.tickets order by ticket_id limit 2)",
        # a negative amount and more clicks than impressions (warn: rows are quarantined first)
        "update raw_marketing.ad_performance set spend = -1, clicks = impressions + 1 "
        "where (date, campaign_id) = (select (date, campaign_id) from raw_marketing.ad_performance"
        " order by date, campaign_id limit 1)",
        # a stale table: its newest change 10 days before the as-of date (warn)
        "update raw_support.time_entries set logged_at = logged_at - interval 10 days",
    )
    results = run_suites(settings, "raw", AS_OF, "test__broken_raw")
    failed = failures(results)
    assert set(failed) == {
        ("orders.raw", "expect_column_values_to_not_be_null", "order_id"),
        ("order_items.raw", "expect_table_columns_to_match_set", None),
        # the range check of the missing column cannot run: reported, not skipped
        ("order_items.raw", "expect_column_values_to_be_between", "unit_price"),
        ("customers.raw", "new_columns_outside_contract", None),
        ("tickets.raw", "expect_column_values_to_be_in_set", "priority"),
        ("ad_performance.raw", "expect_column_values_to_be_between", "spend"),
        (
            "ad_performance.raw",
            "expect_column_pair_values_a_to_be_greater_than_b",
            "impressions, clicks",
        ),
        ("time_entries.raw", "expect_column_max_to_be_between", "logged_at"),
    }, [r.describe() for r in failed.values()]

    null_key = failed[("orders.raw", "expect_column_values_to_not_be_null", "order_id")]
    assert (null_key.severity, null_key.unexpected_count) == ("block", 1)
    assert null_key.observed_value == "unexpected: null"
    missing = failed[("order_items.raw", "expect_table_columns_to_match_set", None)]
    assert missing.severity == "block" and missing.unexpected_count == 1
    assert missing.observed_value == "missing: unit_price"
    unrunnable = failed[("order_items.raw", "expect_column_values_to_be_between", "unit_price")]
    assert (
        unrunnable.observed_value.startswith("error:") and "unit_price" in unrunnable.observed_value
    )
    drift = failed[("customers.raw", "new_columns_outside_contract", None)]
    assert (drift.severity, drift.unexpected_count, drift.observed_value) == (
        "warn",
        1,
        "loyalty_tier",
    )
    out_of_set = failed[("tickets.raw", "expect_column_values_to_be_in_set", "priority")]
    assert (out_of_set.severity, out_of_set.unexpected_count) == ("block", 2)
    assert "critical" in out_of_set.observed_value
    negative = failed[("ad_performance.raw", "expect_column_values_to_be_between", "spend")]
    assert (negative.severity, negative.unexpected_count) == ("warn", 1)
    clicks = failed[
        (
            "ad_performance.raw",
            "expect_column_pair_values_a_to_be_greater_than_b",
            "impressions, clicks",
        )
    ]
    assert (clicks.severity, clicks.unexpected_count) == ("warn", 1)
    impressions, clicks_seen = map(
        int, clicks.observed_value.removeprefix("unexpected: (").rstrip(")").split(", ")
    )
    assert clicks_seen == impressions + 1
    stale = failed[("time_entries.raw", "expect_column_max_to_be_between", "logged_at")]
    assert stale.severity == "warn" and stale.observed_value < "2026-11-13"

    assert {r.suite for r in blocking_failures(results)} == {
        "orders.raw",
        "order_items.raw",
        "tickets.raw",
    }


def test_staging_blocks_a_duplicated_key(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    # a staging model whose dedup went wrong: one customer twice
    execute(
        settings,
        "create or replace table staging.stg_sales__customers as "
        "select * from raw_sales.customers union all "
        "(select * from raw_sales.customers order by customer_id limit 1)",
    )
    results = run_suites(settings, "staging", AS_OF, "test__dup", only=["customers.staging"])
    failed = failures(results)
    assert list(failed) == [
        ("customers.staging", "expect_column_values_to_be_unique", "customer_id")
    ]
    duplicate = failed[("customers.staging", "expect_column_values_to_be_unique", "customer_id")]
    assert (duplicate.severity, duplicate.unexpected_count) == ("block", 2)


def test_volume_warns_outside_the_band_of_the_trailing_runs(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        orders = con.execute("select count(*) from raw_sales.orders").fetchone()[0]
        con.execute("create schema if not exists audit")
        con.execute(
            'create table if not exists audit.dq_results (run_id text, suite text, "check" text, '
            '"column" text, severity text, success boolean, unexpected_count bigint, '
            "observed_value text, checked_at timestamptz)"
        )
        # the trailing runs saw twice as many orders as there are now
        for day in range(1, 4):
            con.execute(
                "insert into audit.dq_results values (?, 'orders.raw', "
                "'expect_table_row_count_to_be_between', null, 'warn', true, null, ?, ?)",
                [f"earlier__{day}", str(orders * 2), f"2026-11-{10 + day} 01:00:00+00"],
            )
    results = run_suites(
        settings, "raw", AS_OF, "test__volume", only=["orders.raw", "customers.raw"]
    )
    failed = failures(results)
    assert list(failed) == [("orders.raw", "expect_table_row_count_to_be_between", None)]
    volume = failed[("orders.raw", "expect_table_row_count_to_be_between", None)]
    assert volume.severity == "warn" and volume.observed_value == str(orders)


def test_mart_checks_block_corrupted_marts(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    execute(
        settings,
        # retention month 0 below 100 % for one cohort
        "update marts.retention_cohorts set retention_rate = 0.9 where months_since_first_order = 0"
        " and cohort_month = (select min(cohort_month) from marts.retention_cohorts)",
        # churn identity off by one on one month
        "update marts.churn_monthly set active_at_end = active_at_end + 1 "
        "where month_start = (select max(month_start) from marts.churn_monthly)",
        # one day's net revenue off by a cent
        "update marts.kpi_daily set net_revenue = net_revenue + 0.01 "
        "where date_day = (select max(date_day) from marts.kpi_daily where net_revenue > 0)",
        # a rate above 1
        "update marts.kpi_daily set ctr = 1.5 "
        "where date_day = (select min(date_day) from marts.kpi_daily where ctr is not null)",
        # a duplicated order (one without revenue: the reconciliation stays whole)
        "insert into marts.fct_orders select * from marts.fct_orders "
        "where order_id = (select min(order_id) from marts.fct_orders where not is_recognized)",
        # ad spend that never reached channel_roi_monthly
        "update marts.fct_ad_performance_daily set spend = spend + 5 "
        "where (date_day, campaign_id) = (select (date_day, campaign_id) "
        "from marts.fct_ad_performance_daily order by date_day, campaign_id limit 1)",
    )
    results = run_suites(settings, "marts", AS_OF, "test__broken_marts")
    failed = failures(results)
    assert set(failed) == {
        ("retention_cohorts.marts", "retention month 0 = 1.0", "retention_rate"),
        (
            "churn_monthly.marts",
            "churn identity: active_at_end = active_at_start - churned + new_customers + "
            "reactivated",
            "identity_difference",
        ),
        (
            "revenue_reconciliation.marts",
            "Σ net_revenue: kpi_daily = fct_orders (recognized)",
            "kpi_daily_minus_fct_orders",
        ),
        ("kpi_daily.marts", "expect_column_values_to_be_between", "ctr"),
        ("fct_orders.marts", "expect_column_values_to_be_unique", "order_id"),
        (
            "spend_reconciliation.marts",
            "Σ spend: channel_roi_monthly = fct_ad_performance_daily",
            "channel_roi_minus_fct_ad_performance",
        ),
    }, [r.describe() for r in failed.values()]
    assert all(r.severity == "block" for r in failed.values())
    by_suite = {k[0]: r for k, r in failed.items()}
    assert by_suite["retention_cohorts.marts"].unexpected_count == 1
    assert by_suite["churn_monthly.marts"].unexpected_count == 1
    assert by_suite["churn_monthly.marts"].observed_value == "unexpected: 1"
    assert by_suite["revenue_reconciliation.marts"].observed_value == "unexpected: 0.01"
    assert by_suite["kpi_daily.marts"].unexpected_count == 1
    assert by_suite["fct_orders.marts"].unexpected_count == 2
    assert by_suite["spend_reconciliation.marts"].observed_value == "unexpected: -5"
    assert len(blocking_failures(results)) == 6


def test_a_gate_split_across_processes_gives_the_results_of_one_process(
    duckdb_marts, tmp_path, monkeypatch, caplog
):
    """run_layers deals the suites to forked processes: the same results in the same order
    (failures included) as one process, the children's log lines logged by the parent, and a
    share that fails names its suites."""
    import logging
    import os

    from ops_warehouse.pipeline.quality import gx_runner

    settings = private_copy(duckdb_marts, tmp_path / "home")
    execute(
        settings,
        "update staging.stg_sales__orders set order_id = null "
        "where order_id = (select min(order_id) from staging.stg_sales__orders)",
        "insert into marts.fct_orders select * from marts.fct_orders "
        "where order_id = (select min(order_id) from marts.fct_orders where not is_recognized)",
    )
    monkeypatch.setattr(gx_runner, "_can_fork", lambda: True)  # pytest may run other threads
    layers = ["staging", "marts"]
    alone = gx_runner.run_layers(settings, layers, AS_OF, "test__alone", processes=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=gx_runner.__name__):
        split = gx_runner.run_layers(settings, layers, AS_OF, "test__split", processes=3)
    assert split == alone
    # one line per layer and share: two from the children, one from this process
    for layer in layers:
        lines = [r for r in caplog.records if r.getMessage().startswith(f"{layer} (")]
        assert len(lines) == 3 and {r.process for r in lines} == {os.getpid()}, layer
    assert {(k[0], k[2]) for k in failures(split)} == {
        ("orders.staging", "order_id"),
        ("fct_orders.marts", "order_id"),
    }
    assert {r.suite for r in split} == {s.name for layer in layers for s in load_suites(layer)}

    parent, real = os.getpid(), gx_runner.run_suites

    def fails_in_a_child(settings, layer, as_of, run_id, only=None, *, full=True):
        if os.getpid() != parent and "kpi_daily.marts" in (only or ()):
            raise RuntimeError("the warehouse went away")
        return real(settings, layer, as_of, run_id, only, full=full)

    monkeypatch.setattr(gx_runner, "run_suites", fails_in_a_child)
    shares = {name: i % 3 for i, name in enumerate(s.name for s in load_suites("marts"))}
    assert shares["kpi_daily.marts"] != 0, "the failing suite is a child's"
    with pytest.raises(gx_runner.ValidationProcessFailed, match="kpi_daily.marts.*went away"):
        gx_runner.run_layers(settings, ["marts"], AS_OF, "test__child", processes=3)


def test_revenue_recomputed_from_staging_catches_a_corrupted_staging_row(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    execute(
        settings,
        "create or replace table staging.stg_sales__orders as "
        "select * replace (subtotal + 1 as subtotal) from raw_sales.orders",
    )
    results = run_suites(
        settings, "marts", AS_OF, "test__staging", only=["revenue_reconciliation.marts"]
    )
    failed = failures(results)
    assert list(failed) == [
        (
            "revenue_reconciliation.marts",
            "Σ net_revenue: fct_orders = recomputed from staging",
            "fct_orders_minus_staging",
        )
    ]


def test_a_missing_mart_blocks(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    execute(settings, "drop table marts.churn_drivers")
    results = run_suites(settings, "marts", AS_OF, "test__missing", only=["churn_drivers.marts"])
    assert [(r.check, r.severity, r.success) for r in results] == [("readable", "block", False)]
    assert "churn_drivers" in results[0].observed_value


def test_validation_runs_beside_an_open_write_connection(duckdb_marts, tmp_path):
    # a task may keep its audit connection open around the validation
    settings = private_copy(duckdb_marts, tmp_path)
    with duckdb.connect(str(settings.warehouse_path)):
        results = run_suites(settings, "marts", AS_OF, "test__open", only=["dim_date.marts"])
    assert results and failures(results) == {}


def test_data_docs_show_the_runs(duckdb_marts, tmp_path):
    settings = dataclasses.replace(duckdb_marts, home=tmp_path)
    run_suites(settings, "marts", AS_OF, "test__docs", only=["kpi_daily.marts"])
    index = build_data_docs(settings)
    assert index == tmp_path / "data_docs" / "index.html" and index.is_file()
    pages = list((tmp_path / "data_docs" / "validations").rglob("*.html"))
    assert any("test__docs" in str(p) for p in pages)
    assert "kpi_daily.marts" in index.read_text()


def test_data_docs_render_each_result_once_and_show_the_newest(duckdb_marts, tmp_path, monkeypatch):
    """A build renders pages only for results that have none, and keeps GX's store to the
    results the site shows (older ones are archived): a night's docs cost the night's
    results, not the history's."""
    from ops_warehouse.pipeline.quality import gx_runner

    monkeypatch.setattr(gx_runner, "shown_results_limit", lambda context: 2)
    settings = dataclasses.replace(duckdb_marts, home=tmp_path)
    site, store = tmp_path / "data_docs" / "validations", tmp_path / "gx" / "validations"

    def page(run_id: str) -> Path:
        (found,) = [p for p in site.rglob("*.html") if run_id in p.parts]
        return found

    for run_id in ("docs_1", "docs_2"):
        run_suites(settings, "marts", AS_OF, run_id, only=["dim_date.marts"])
    build_data_docs(settings)
    first = {run_id: page(run_id).stat().st_mtime_ns for run_id in ("docs_1", "docs_2")}
    run_suites(settings, "marts", AS_OF, "docs_3", only=["dim_date.marts"])
    index = build_data_docs(settings)
    # the page still shown was not rendered again; the new result has its own; the archived
    # result's page is gone with it from the site (GX's site mirrors its store)
    assert page("docs_2").stat().st_mtime_ns == first["docs_2"]
    assert page("docs_3").is_file()
    assert not [p for p in site.rglob("*.html") if "docs_1" in p.parts]
    # the store holds the two newest results, the oldest is archived
    held = sorted(p.relative_to(store).parts[2] for p in store.rglob("*.json"))
    assert held == ["docs_2", "docs_3"]
    archived = list(gx_runner.archived_results_dir(settings).rglob("*.json"))
    assert [p.relative_to(gx_runner.archived_results_dir(settings)).parts[2] for p in archived] == [
        "docs_1"
    ]
    text = index.read_text()
    assert "docs_3" in text and "docs_2" in text and "docs_1" not in text


# --- PostgreSQL: GX's SQL datasource --------------------------------------------------------


@contextmanager
def pg_statements(settings: Settings, do: str, undo: str) -> Iterator[None]:
    with psycopg.connect(settings.postgres_url, autocommit=True) as con:
        con.execute(do)
    try:
        yield
    finally:
        with psycopg.connect(settings.postgres_url, autocommit=True) as con:
            con.execute(undo)


def test_mart_suites_on_postgres(postgres_marts, tmp_path):
    settings = dataclasses.replace(postgres_marts, home=tmp_path)
    results = run_suites(settings, "marts", AS_OF, "test__pg")
    assert {r.suite for r in results} == {s.name for s in load_suites("marts")}
    assert failures(results) == {}, [r.describe() for r in results if not r.success]

    day = "(select max(date_day) from marts.kpi_daily where net_revenue > 0)"
    with pg_statements(
        settings,
        f"update marts.kpi_daily set net_revenue = net_revenue + 0.01 where date_day = {day}",
        f"update marts.kpi_daily set net_revenue = net_revenue - 0.01 where date_day = {day}",
    ):
        results = run_suites(
            settings,
            "marts",
            AS_OF,
            "test__pg_broken",
            only=["revenue_reconciliation.marts", "retention_cohorts.marts"],
        )
    failed = failures(results)
    assert list(failed) == [
        (
            "revenue_reconciliation.marts",
            "Σ net_revenue: kpi_daily = fct_orders (recognized)",
            "kpi_daily_minus_fct_orders",
        )
    ]
    assert failed[next(iter(failed))].severity == "block"
    assert blocking_failures(results) == list(failed.values())


@pytest.mark.parametrize("layer", ["raw", "staging"])
def test_raw_and_staging_suites_on_postgres(postgres_marts, tmp_path, layer):
    settings = dataclasses.replace(postgres_marts, home=tmp_path)
    results = run_suites(settings, layer, AS_OF, "test__pg")
    assert failures(results) == {}, [r.describe() for r in results if not r.success]
