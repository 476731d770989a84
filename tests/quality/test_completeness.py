"""The completeness gate: a build that lost data never replaces what readers see.

Hand-made profiles prove each rule's arithmetic; the small world, built once, proves the
gate in the transform's validation: a planted partial load and a closed month's revenue
changed by 5 % block, the published file stays byte-identical and the alert names the check
and the entity; a lost working warehouse reloaded from the sources publishes the same marts.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from decimal import Decimal

import duckdb
import pytest

from ops_warehouse.airflow.tasks import QualityGateBlocked, run_validation
from ops_warehouse.pipeline import completeness
from ops_warehouse.pipeline.audit import record_raw_removal
from ops_warehouse.pipeline.completeness import MartsProfile, compare
from ops_warehouse.pipeline.transform import dbt_invoke
from ops_warehouse.warehouse import publish
from tests.conftest import (
    MARTS_UNTIL,
    drop_pg_database,
    load_and_build,
    make_settings,
    scratch_pg_database,
)
from tests.quality.wap import (  # noqa: F401 (fixed_data_docs is a fixture)
    WebhookSink,
    airflow_context,
    file_hash,
    fixed_data_docs,
    run,
    working_copy,
)

AS_OF = date(2026, 11, 22)


def _profile(days=(date(2025, 1, 1), date(2026, 11, 22), 691), rows=None, monthly=None):
    return MartsProfile(
        first_day=days[0],
        last_day=days[1],
        days=days[2],
        rows=rows or dict.fromkeys(completeness.COUNTED_MARTS, 1000),
        monthly=monthly or {(date(2026, 3, 1), "net_revenue"): Decimal("10000.00")},
    )


def _failed(results) -> dict[str, str]:
    return {
        f"{r.suite} {r.check} {r.column or ''}".strip(): r.observed_value
        for r in results
        if not r.success
    }


def test_first_publish_is_exempt_and_says_so(settings_for_rules):
    (result,) = compare(None, _profile(), AS_OF, settings_for_rules)
    assert result.success and "first publish" in result.observed_value


def test_days_covered_never_shrink(settings_for_rules):
    published = _profile()
    assert _failed(compare(published, _profile(), AS_OF, settings_for_rules)) == {}
    later = _profile(days=(date(2025, 1, 1), date(2026, 11, 23), 692))
    assert _failed(compare(published, later, AS_OF, settings_for_rules)) == {}
    for shrunk in (
        (date(2026, 11, 21), date(2026, 11, 22), 2),  # history lost
        (date(2025, 1, 1), date(2026, 11, 20), 689),  # ends earlier
    ):
        failed = _failed(compare(published, _profile(days=shrunk), AS_OF, settings_for_rules))
        assert list(failed) == ["kpi_daily.completeness days_covered_never_shrink date_day"]


def test_row_counts_drop_at_most_the_tolerance(settings_for_rules):
    # tolerance 0.5 %: 1000 → 995 passes, 1000 → 994 blocks
    published = _profile()
    rows = dict(published.rows, fct_orders=995)
    assert _failed(compare(published, _profile(rows=rows), AS_OF, settings_for_rules)) == {}
    rows = dict(published.rows, fct_orders=994, dim_customers=1200)
    failed = _failed(compare(published, _profile(rows=rows), AS_OF, settings_for_rules))
    assert list(failed) == ["fct_orders.completeness row_count_never_drops"]
    assert "published 1000 rows, new 994" in failed["fct_orders.completeness row_count_never_drops"]


def test_closed_months_keep_their_totals(settings_for_rules):
    # 90 days before 2026-11-22 is 2026-08-24: months up to July are closed, August is open
    closed, still_open = date(2026, 7, 1), date(2026, 8, 1)
    published = _profile(
        monthly={
            (closed, "net_revenue"): Decimal("10000.00"),
            (still_open, "net_revenue"): Decimal("10000.00"),
        }
    )
    within = {
        (closed, "net_revenue"): Decimal("10099.00"),
        (still_open, "net_revenue"): Decimal("13000.00"),
    }
    assert _failed(compare(published, _profile(monthly=within), AS_OF, settings_for_rules)) == {}
    moved = {
        (closed, "net_revenue"): Decimal("10500.00"),
        (still_open, "net_revenue"): Decimal("10000.00"),
    }
    failed = _failed(compare(published, _profile(monthly=moved), AS_OF, settings_for_rules))
    assert failed == {
        "kpi_daily.completeness closed_month_totals_unchanged net_revenue": (
            "2026-07: published 10000.00, new 10500.00 (+5.0%)"
        )
    }


@pytest.fixture
def settings_for_rules(tmp_path):
    from ops_warehouse.settings import Settings

    return dataclasses.replace(
        Settings.from_env(),
        home=tmp_path,
        row_drop_tolerance=0.005,
        closed_period_days=90,
        closed_period_tolerance=0.01,
    )


# --- the gate in the transform's validation, on the small world ---------------------------


@pytest.fixture
def published_copy(duckdb_marts, tmp_path, monkeypatch):
    """A private working copy whose marts are published, alerts to a local webhook, and the
    GX suites left out (tested in tests/quality/test_gx_suites.py): only the gate decides."""
    import ops_warehouse.pipeline.quality as quality

    monkeypatch.setattr(quality, "run_layers", lambda *args, **kwargs: [])
    with WebhookSink() as hook:
        settings = working_copy(duckdb_marts, tmp_path / "home", alert_webhook_url=hook.url)
        earlier = run("scheduled__2026-11-22")
        publish.publish(settings, earlier)
        yield settings, hook


def _validate_and_expect_block(settings, hook, expected: str) -> None:
    published = file_hash(settings.published_path)
    context = airflow_context(run("scheduled__2026-11-23"), "validate_marts")
    with pytest.raises(QualityGateBlocked) as blocked:
        run_validation(["staging", "marts"], context)
    assert expected in str(blocked.value)
    assert file_hash(settings.published_path) == published
    assert len(hook.posts) == 1
    assert expected in str(hook.posts[0]["json"]), hook.posts[0]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        recorded = con.execute(
            'select suite, "check", success from audit.dq_results'
            " where run_id = 'scheduled__2026-11-23' and not success"
        ).fetchall()
    assert recorded and all(suite.endswith(".completeness") for suite, _, _ in recorded)


@pytest.mark.usefixtures("fixed_data_docs")
def test_planted_partial_load_blocks_and_names_the_entity(published_copy, monkeypatch):
    settings, hook = published_copy
    with duckdb.connect(str(settings.warehouse_path)) as con:
        kept = con.execute("select count(*) // 5 from raw_sales.orders").fetchone()[0]
        con.execute(
            "delete from raw_sales.orders where order_id not in"
            " (select order_id from raw_sales.orders order by order_id limit ?)",
            [kept],
        )
        # as the paths that remove raw rows record it (a rebuild from a short archive, say):
        # the next staging build drops those orders
        record_raw_removal(con, "raw_sales.orders", None, "test: a short rebuild")
    monkeypatch.setattr("ops_warehouse.settings.get_settings", lambda: settings)
    dbt_invoke(["build", "--exclude-resource-type", "test"], settings=settings, as_of=MARTS_UNTIL)
    _validate_and_expect_block(settings, hook, "fct_orders.completeness row_count_never_drops")


@pytest.mark.usefixtures("fixed_data_docs")
def test_closed_month_revenue_changed_by_5_percent_blocks(published_copy, monkeypatch):
    settings, hook = published_copy
    with duckdb.connect(str(settings.warehouse_path)) as con:
        month = con.execute(
            "select min(date_trunc('month', date_day)) + interval 2 month from marts.kpi_daily"
        ).fetchone()[0]
        con.execute(
            "update marts.kpi_daily set net_revenue = round(net_revenue * 1.05, 2)"
            " where date_trunc('month', date_day) = ?",
            [month],
        )
    monkeypatch.setattr("ops_warehouse.settings.get_settings", lambda: settings)
    _validate_and_expect_block(
        settings, hook, "kpi_daily.completeness closed_month_totals_unchanged (net_revenue) FAILED"
    )


# --- a lost working warehouse: the next run reloads everything and publishes the same -----


def _published_marts(settings) -> dict[str, list[str]]:
    """Every published mart's rows, load bookkeeping (``_loaded_at``) left out."""
    from tests.helpers import MART_TABLES

    def rows(con, table: str) -> list[str]:
        cursor = con.execute(f"select * from marts.{table}")
        keep = [i for i, d in enumerate(cursor.description) if d[0] != "_loaded_at"]
        return sorted(repr(tuple(r[i] for i in keep)) for r in cursor.fetchall())

    if settings.warehouse == "postgres":
        import psycopg

        with psycopg.connect(settings.published_postgres_url) as con:
            return {t: rows(con, t) for t in MART_TABLES}
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return {t: rows(con, t) for t in MART_TABLES}


def _build_gate_publish(settings, run_id: str) -> None:
    load_and_build(settings, MARTS_UNTIL, ["build", "--exclude-resource-type", "test"])
    results = completeness.run_gate(settings, MARTS_UNTIL)
    assert all(r.success for r in results), [r.describe() for r in results if not r.success]
    publish.publish(settings, run(run_id))


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_lost_working_warehouse_publishes_the_same_marts(
    engine, marts_world, marts_server, tmp_path
):
    settings = make_settings(tmp_path / "home", marts_world, marts_server.url)
    databases = []
    if engine == "postgres":
        databases = [f"ops_lost_{tmp_path.name[-12:]}_{n}".lower() for n in (1, 2)]
        settings = dataclasses.replace(
            settings,
            warehouse="postgres",
            dbt_target="postgres",
            postgres_url=scratch_pg_database(databases[0]),
            published_postgres_url=scratch_pg_database(databases[0] + "_pub"),
        )
    try:
        _build_gate_publish(settings, "scheduled__1")
        before = _published_marts(settings)
        assert len(before["kpi_daily"]) > 300
        if engine == "postgres":  # the same OPS_HOME pointed at a new, empty database
            settings = dataclasses.replace(settings, postgres_url=scratch_pg_database(databases[1]))
        else:
            settings.warehouse_path.unlink()
        _build_gate_publish(settings, "scheduled__2")
        assert _published_marts(settings) == before
    finally:
        for name in databases:
            drop_pg_database(name)
            drop_pg_database(name + "_pub")
        shutil.rmtree(tmp_path / "home", ignore_errors=True)
