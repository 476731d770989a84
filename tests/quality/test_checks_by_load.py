"""On an incremental day the row checks read the rows loaded (raw) or built (staging) since the
last passing gate of their layer; a full build reads whole tables (gx_runner, docs/quality.md
"Checks in proportion to the day").

A load is simulated as the loaders write one: rows (new or changed) stamped with one
``_loaded_at`` later than every stamp before. The gate is run as the transform DAG runs it:
the tables' newest stamps are read before the checks and recorded only when no blocking check
failed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import duckdb
import psycopg

from ops_warehouse.pipeline import audit
from ops_warehouse.pipeline.quality.gx_runner import (
    blocking_failures,
    build_data_docs,
    newest_loads,
    run_suites,
)
from ops_warehouse.pipeline.quality.results import CheckResult
from ops_warehouse.settings import Settings
from tests.quality.test_gx_suites import AS_OF, execute, failures, private_copy

CURRENCY = ("orders.raw", "expect_column_values_to_be_in_set", "currency")
SPEND = ("ad_performance.raw", "expect_column_values_to_be_between", "spend")
ORDERS_VOLUME = ("orders.raw", "expect_table_row_count_to_be_between", None)
RAW_SCHEMAS = ("raw_marketing", "raw_sales", "raw_support")


def gate(settings: Settings, run_id: str, *, full: bool, layer: str = "raw") -> list[CheckResult]:
    """A layer's gate as the transform DAG runs it."""
    loads = newest_loads(settings, [layer])
    results = run_suites(settings, layer, AS_OF, run_id, full=full)
    if not blocking_failures(results):
        audit.record_validated_loads(settings, audit.RunInfo("transform", run_id), loads)
    return results


def load(settings: Settings, day: int, table: str, change: str, where: str) -> None:
    """A load on ``day`` (days after now) that changes the rows ``where`` selects."""
    stamp = datetime.now(UTC) + timedelta(days=day)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(f"update {table} set {change}, _loaded_at = ? where {where}", [stamp])


def query(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path)) as con:
        return con.execute(sql).fetchall()


def stamps(settings: Settings, schemas: tuple[str, ...] = RAW_SCHEMAS) -> dict[str, datetime]:
    """The newest _loaded_at of every table of some schemas, from the tables themselves."""
    listed = ", ".join(f"'{schema}'" for schema in schemas)
    tables = query(
        settings,
        "select table_schema || '.' || table_name from information_schema.columns "
        f"where table_schema in ({listed}) and column_name = '_loaded_at'",
    )
    return {t: query(settings, f"select max(_loaded_at) from {t}")[0][0] for (t,) in tables}


def validated(settings: Settings, run_id: str) -> dict[str, datetime]:
    return dict(
        query(
            settings,
            "select table_name, loaded_through from audit.validated_loads "
            f"where run_id = '{run_id}'",
        )
    )


def test_a_day_checks_the_rows_of_its_loads_and_a_full_build_the_whole_tables(
    duckdb_marts, tmp_path
):
    settings = private_copy(duckdb_marts, tmp_path)
    first_ad = "(date, campaign_id) = (select (date, campaign_id) from raw_marketing.ad_performance"
    # a negative spend (warn) already in raw before the first gate
    execute(
        settings,
        f"update raw_marketing.ad_performance set spend = -1 where {first_ad}"
        " order by date, campaign_id limit 1)",
    )
    orders = query(settings, "select count(*) from raw_sales.orders")[0][0]

    # day 1, no gate has passed yet: whole tables; the warning does not block
    day1 = gate(settings, "day1", full=False)
    assert set(failures(day1)) == {SPEND}
    assert failures(day1)[SPEND].observed_value == "unexpected: -1.00"
    assert validated(settings, "day1") == stamps(settings)
    through = validated(settings, "day1")["raw_sales.orders"]

    # day 2: a load brings an order in a currency outside the set (block)
    bad_order = "order_id = (select min(order_id) from raw_sales.orders)"
    load(settings, 1, "raw_sales.orders", "currency = 'XXX'", bad_order)
    day2 = gate(settings, "day2", full=False)
    failed = failures(day2)
    # the new bad row blocks; the spend warning of a load already passed is not reported again
    assert set(failed) == {CURRENCY}
    currency = failed[CURRENCY]
    assert (currency.severity, currency.unexpected_count) == ("block", 1)
    assert currency.observed_value == f"unexpected: XXX (rows loaded after {through.isoformat()})"
    passed = {(r.suite, r.check, r.column): r for r in day2}
    assert passed[SPEND].success and "rows loaded after" in passed[SPEND].observed_value
    # table-level checks still read the whole table
    assert passed[ORDERS_VOLUME].observed_value == str(orders)
    # blocked: the gate's mark does not move
    assert validated(settings, "day2") == {}

    # day 3: another load (good tickets); the blocked order is checked again
    load(settings, 2, "raw_support.tickets", "priority = priority", "ticket_id is not null")
    day3 = gate(settings, "day3", full=False)
    assert set(failures(day3)) == {CURRENCY}
    assert failures(day3)[CURRENCY].unexpected_count == 1
    assert validated(settings, "day3") == {}

    # a full build reads whole tables: the old warning is found again, without a scope
    full = failures(gate(settings, "full", full=True))
    assert set(full) == {CURRENCY, SPEND}
    assert full[SPEND].observed_value == "unexpected: -1.00"
    assert full[CURRENCY].observed_value == "unexpected: XXX"

    # day 4: the order is corrected by a new load; the gate passes and the mark moves on
    load(settings, 3, "raw_sales.orders", "currency = 'USD'", bad_order)
    day4 = gate(settings, "day4", full=False)
    assert failures(day4) == {}
    assert validated(settings, "day4") == stamps(settings)
    assert validated(settings, "day4")["raw_sales.orders"] > through


def test_the_mark_is_the_last_passing_gate_and_a_full_build_also_sets_it(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    assert not failures(gate(settings, "sunday", full=True))
    assert validated(settings, "sunday") == stamps(settings)
    # a bad time entry loaded after it (block: a null key) is found on the incremental day
    execute(
        settings, "alter table raw_support.time_entries alter column time_entry_id drop not null"
    )
    first = "time_entry_id = (select min(time_entry_id) from raw_support.time_entries)"
    load(settings, 1, "raw_support.time_entries", "time_entry_id = null", first)
    failed = failures(gate(settings, "monday", full=False))
    null_key = ("time_entries.raw", "expect_column_values_to_not_be_null", "time_entry_id")
    assert set(failed) == {null_key}
    assert failed[null_key].unexpected_count == 1


# --- PostgreSQL -----------------------------------------------------------------------------


def test_the_new_rows_only_on_postgres(postgres_marts, tmp_path):
    settings = dataclasses.replace(postgres_marts, home=tmp_path)
    loads = newest_loads(settings, ["raw"])
    assert len(loads) == 15 and loads["raw_sales.orders"] is not None
    run = audit.RunInfo("transform", "test__pg_mark")
    audit.record_validated_loads(settings, run, loads)
    old, new = "min", "max"
    pick = "order_id = (select {}(order_id) from raw_sales.orders)"
    stamp = datetime.now(UTC) + timedelta(days=1)
    with psycopg.connect(settings.postgres_url, autocommit=True) as con:
        saved = con.execute(
            f"select order_id, currency, _loaded_at from raw_sales.orders where {pick.format(old)}"
            f" or {pick.format(new)}"
        ).fetchall()
        # one bad row in rows already vouched for, one in a new load
        con.execute(f"update raw_sales.orders set currency = 'XXX' where {pick.format(old)}")
        con.execute(
            f"update raw_sales.orders set currency = 'YYY', _loaded_at = %s "
            f"where {pick.format(new)}",
            [stamp],
        )
    try:
        day = failures(run_suites(settings, "raw", AS_OF, "test__pg_day", full=False))
        full = failures(run_suites(settings, "raw", AS_OF, "test__pg_full", full=True))
    finally:
        with psycopg.connect(settings.postgres_url, autocommit=True) as con:
            con.cursor().executemany(
                "update raw_sales.orders set currency = %s, _loaded_at = %s where order_id = %s",
                [(currency, loaded_at, order_id) for order_id, currency, loaded_at in saved],
            )
            con.execute("delete from audit.validated_loads where run_id = 'test__pg_mark'")
    assert set(day) == {CURRENCY} and day[CURRENCY].unexpected_count == 1
    assert day[CURRENCY].observed_value.startswith("unexpected: YYY (rows loaded after ")
    assert set(full) == {CURRENCY} and full[CURRENCY].unexpected_count == 2


def test_staging_checks_the_rows_built_since_its_last_passing_gate(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    only = ["orders.staging"]
    loads = newest_loads(settings, ["staging"])
    assert loads == stamps(settings, ("staging",))
    audit.record_validated_loads(settings, audit.RunInfo("transform", "earlier"), loads)
    table = "staging.stg_sales__orders"
    first, last = (f"order_id = (select {f}(order_id) from {table})" for f in ("min", "max"))
    execute(settings, f"alter table {table} alter column order_id drop not null")
    # a null key in a row built before the mark, and one in a row a later build wrote
    execute(settings, f"update {table} set order_id = null where {first}")
    load(settings, 1, table, "order_id = null", last)
    null_key = ("orders.staging", "expect_column_values_to_not_be_null", "order_id")
    day = failures(run_suites(settings, "staging", AS_OF, "day", only, full=False))
    assert set(day) == {null_key} and day[null_key].unexpected_count == 1
    mark = loads[table].isoformat()
    assert day[null_key].observed_value == f"unexpected: null (rows loaded after {mark})"
    full = failures(run_suites(settings, "staging", AS_OF, "full", only, full=True))
    assert set(full) == {null_key} and full[null_key].unexpected_count == 2


def test_key_checks_read_every_row_sharing_a_key_with_a_new_row(duckdb_marts, tmp_path):
    settings = private_copy(duckdb_marts, tmp_path)
    loads = newest_loads(settings, ["marts"])
    assert loads == stamps(settings, ("marts",))  # fct_tickets: the one mart with _loaded_at
    audit.record_validated_loads(settings, audit.RunInfo("transform", "earlier"), loads)
    ticket = "ticket_id = (select {}(ticket_id) from marts.fct_tickets)"
    with duckdb.connect(str(settings.warehouse_path)) as con:
        # a later build writes the first ticket again beside its earlier row (a new row
        # repeating an old key), and an old copy of the last ticket is there already
        con.execute(
            "insert into marts.fct_tickets select * replace (? as _loaded_at) "
            f"from marts.fct_tickets where {ticket.format('min')}",
            [datetime.now(UTC) + timedelta(days=1)],
        )
        con.execute(
            f"insert into marts.fct_tickets select * from marts.fct_tickets "
            f"where {ticket.format('max')}"
        )
    unique = ("fct_tickets.marts", "expect_column_values_to_be_unique", "ticket_id")
    only = ["fct_tickets.marts"]
    day = failures(run_suites(settings, "marts", AS_OF, "day", only, full=False))
    assert set(day) == {unique} and day[unique].unexpected_count == 2
    mark = loads["marts.fct_tickets"].isoformat()
    assert day[unique].observed_value.endswith(f" (keys of rows loaded after {mark})")
    full = failures(run_suites(settings, "marts", AS_OF, "full", only, full=True))
    assert set(full) == {unique} and full[unique].unexpected_count == 4
    # the Data Docs show the key checks' own validation beside the suite's
    build_data_docs(settings)
    site = settings.home / "data_docs" / "validations"
    pages = [page.relative_to(site).parts for page in site.rglob("*.html")]
    # (GX files a suite's results under its name's dotted parts)
    assert sorted(parts[:2] for parts in pages) == [("fct_tickets", "marts")] * 3
    assert [parts[2:4] for parts in pages if "new_keys" in parts] == [("new_keys", "ticket_id")]


def test_on_postgres_the_rows_since_a_mark_are_read_by_index(postgres_marts):
    """PostgreSQL has no zone maps: a load indexes ``_loaded_at`` of the raw tables it wrote,
    so an incremental day's checks and staging models find the day's rows without reading the
    whole table. The planner, told not to scan, reads the checks' own predicate by index."""
    raw = "'raw_marketing', 'raw_sales', 'raw_support'"
    with psycopg.connect(postgres_marts.postgres_url) as con:
        stamped = {
            (schema, table)
            for schema, table in con.execute(
                f"select table_schema, table_name from information_schema.columns "
                f"where column_name = '_loaded_at' and table_schema in ({raw})"
            ).fetchall()
        }
        indexed = {
            (schema, table)
            for schema, table in con.execute(
                f"select schemaname, tablename from pg_indexes where schemaname in ({raw}) "
                "and indexname = tablename || '__loaded_at'"
            ).fetchall()
        }
        assert len(stamped) == 15 and indexed == stamped
        con.execute("set enable_seqscan = off")
        mark = datetime.now(UTC) - timedelta(days=1)
        plan = "\n".join(
            row[0]
            for row in con.execute(
                "explain select count(*) from raw_sales.orders where _loaded_at > %s", [mark]
            ).fetchall()
        )
    assert "orders__loaded_at" in plan, plan
