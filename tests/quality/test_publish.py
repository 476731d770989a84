"""Write-audit-publish: what gets published, a blocked run changes nothing, readers are never
disturbed (DuckDB), and the schema swap on PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import textwrap
import time

import duckdb
import psycopg
import pytest

from ops_warehouse.airflow.tasks import QualityGateBlocked, enforce_quality_gate
from ops_warehouse.pipeline import audit
from ops_warehouse.warehouse import publish
from ops_warehouse.warehouse.engines import pg_connect
from tests.dbt.conftest import drop_pg_database
from tests.quality.wap import (  # noqa: F401 (fixed_data_docs is a fixture)
    BLOCKING,
    PASSED,
    RECONCILIATION_SQL,
    airflow_context,
    file_hash,
    fixed_data_docs,
    quarantine_row,
    run,
    working_copy,
)

CUSTOMER_EMAIL = "Jane.Doe@Example.com"


@pytest.fixture
def settings(duckdb_marts, tmp_path):
    return working_copy(duckdb_marts, tmp_path / "home")


def _quarantine_a_customer(settings) -> None:
    """A quarantined row as the loaders write it, its payload holding an email address."""
    quarantine_row(
        settings,
        "sales",
        "customers",
        "C9",
        "country: value outside its allowed set",
        {"customer_id": "C9", "email": CUSTOMER_EMAIL, "country": "XX"},
    )


def _schemas_and_tables(path) -> dict[str, dict[str, int]]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name, table_type from information_schema.tables"
        ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for schema, table, kind in tables:
            assert kind == "BASE TABLE", f"{schema}.{table} is a {kind} in the published file"
            out.setdefault(schema, {})[table] = con.execute(
                f'select count(*) from {schema}."{table}"'
            ).fetchone()[0]
    return out


def test_publish_copies_marts_and_audit_and_nothing_else(settings):
    _quarantine_a_customer(settings)
    this = run("scheduled__2026-11-23")
    audit.record_run_start(settings, this)
    audit.record_dq_results(settings, this, [PASSED])

    where = publish.publish(settings, this)

    assert where == str(settings.published_path)
    published = _schemas_and_tables(settings.published_path)
    working = _schemas_and_tables_of_working(settings)
    assert set(published) == {"marts", "audit"}, "only marts and audit are published"
    assert published["marts"] == working["marts"], "every mart with all its rows"
    assert set(published["audit"]) == {
        "pipeline_runs",
        "pipeline_run_entities",
        "dq_results",
        "quarantine",
        "published_marts",
    }
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        status = con.execute(
            "select status, finished_at is not null from audit.pipeline_runs where run_id = ?",
            [this.run_id],
        ).fetchall()
        payload = con.execute("select payload from audit.quarantine").fetchone()[0]
        checks = con.execute('select suite, "check", success from audit.dq_results').fetchall()
        emails = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where column_name like '%email%' and column_name not like '%sha256%'"
        ).fetchall()
    assert status == [("published", True)]
    assert checks == [("orders.raw", "expect_column_values_to_be_unique", True)]
    assert emails == [], "no email column is published"
    # the quarantined row is published with the address hashed, the working copy keeps it
    assert CUSTOMER_EMAIL not in payload
    assert json.loads(payload) == {
        "customer_id": "C9",
        "email": hashlib.sha256(CUSTOMER_EMAIL.lower().encode()).hexdigest(),
        "country": "XX",
    }
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert CUSTOMER_EMAIL in con.execute("select payload from audit.quarantine").fetchone()[0]
        assert con.execute(
            "select status from audit.pipeline_runs where run_id = ?", [this.run_id]
        ).fetchone() == ("published",)
    assert not list(settings.published_path.parent.glob(".*.next*")), "no temporary file left"


def _schemas_and_tables_of_working(settings) -> dict[str, dict[str, int]]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        out: dict[str, dict[str, int]] = {}
        for (table,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall():
            out.setdefault("marts", {})[table] = con.execute(
                f'select count(*) from marts."{table}"'
            ).fetchone()[0]
    return out


@pytest.mark.usefixtures("fixed_data_docs")
def test_blocked_run_leaves_the_published_file_byte_identical(settings):
    first = run("scheduled__2026-11-22")
    audit.record_run_start(settings, first)
    publish.publish(settings, first)
    before = file_hash(settings.published_path)

    second = run("scheduled__2026-11-23")
    audit.record_run_start(settings, second)
    with duckdb.connect(str(settings.warehouse_path)) as con:  # the new run's (bad) marts
        con.execute(
            "update marts.kpi_daily set net_revenue = net_revenue + 12.34 "
            "where date_day = (select max(date_day) from marts.kpi_daily)"
        )
    with pytest.raises(QualityGateBlocked, match="expect_net_revenue_to_reconcile"):
        enforce_quality_gate(
            settings, second, "marts", [PASSED, BLOCKING], airflow_context(second, "validate_marts")
        )

    assert file_hash(settings.published_path) == before
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        status, message = con.execute(
            "select status, message from audit.pipeline_runs where run_id = ?", [second.run_id]
        ).fetchone()
        results = con.execute(
            'select suite, "check", severity, success, unexpected_count, observed_value '
            "from audit.dq_results where run_id = ? order by suite",
            [second.run_id],
        ).fetchall()
    assert status == "blocked"
    assert "expect_net_revenue_to_reconcile" in message
    assert results == [
        ("kpi_daily.marts", "expect_net_revenue_to_reconcile", "block", False, 1, "off by 12.34"),
        ("orders.raw", "expect_column_values_to_be_unique", "block", True, 0, None),
    ]


# Both readers open the file as the project's readers do (readers.attach_published, which
# the reports' engine.published shares): a plain connect by path can fail at the instant of a
# swap, DuckDB opening the file three times (files.attach_read_only).
READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from ops_warehouse.warehouse.readers import attach_published

    path, stop, sql = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    snapshots, errors = [], []
    while not stop.exists() or len(snapshots) < 5:
        try:
            with attach_published(path) as con:
                snapshots.append([str(v) for v in con.execute(sql).fetchone()])
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"snapshots": snapshots, "errors": errors[:5], "error_count": len(errors)}))
    """
)


# A report-like reader: one connection held for several queries over several marts, as a
# report render does; the reconciliation is read at its start and its end.
REPORT_READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from ops_warehouse.warehouse.readers import attach_published

    path, stop, sql = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    reports, errors = [], []
    while not stop.exists() or len(reports) < 3:
        try:
            with attach_published(path) as con:
                first = [str(v) for v in con.execute(sql).fetchone()]
                for query in ("select count(*) from marts.kpi_scorecard",
                              "select count(*) from marts.retention_cohorts",
                              "select max(date_day) from marts.kpi_daily"):
                    con.execute(query).fetchall()
                    time.sleep(0.05)
                reports.append([first, [str(v) for v in con.execute(sql).fetchone()]])
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"reports": reports, "errors": errors[:5], "error_count": len(errors)}))
    """
)


def test_readers_see_consistent_snapshots_while_publish_runs(settings, tmp_path):
    """Five publishes, each of a different but internally consistent warehouse, while two
    other processes read the published file: a BI-like query loop and a report-like reader
    holding its connection for several queries. A publish that rewrote tables in place
    would let a reader see one table new and the other old, and a lock taken by anyone
    would show up as an error. A connection held open across the publishes keeps reading
    its snapshot."""
    first = run("scheduled__2026-11-18")
    audit.record_run_start(settings, first)
    publish.publish(settings, first)
    held = duckdb.connect(str(settings.published_path), read_only=True)
    held_first = held.execute(RECONCILIATION_SQL).fetchone()
    held_file = settings.published_path.open("rb")  # the bytes a reader of the old file has
    held_bytes = hashlib.sha256(held_file.read()).hexdigest()
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(settings.published_path), str(stop), RECONCILIATION_SQL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    report_reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            REPORT_READER,
            str(settings.published_path),
            str(stop),
            RECONCILIATION_SQL,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        for n in range(5):
            with duckdb.connect(str(settings.warehouse_path)) as con:
                # the same correction in the fact and in the daily KPI: the identity holds
                con.execute(
                    "update marts.fct_orders set net_revenue = net_revenue + 1000 where "
                    "order_id = (select min(order_id) from marts.fct_orders where is_recognized)"
                )
                con.execute(
                    "update marts.kpi_daily set net_revenue = net_revenue + 1000 where date_day ="
                    " (select order_date from marts.fct_orders where order_id = (select "
                    "min(order_id) from marts.fct_orders where is_recognized))"
                )
            this = run(f"scheduled__2026-11-{19 + n}")
            audit.record_run_start(settings, this)
            publish.publish(settings, this)
            time.sleep(0.3)
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=300)
        report_out, report_err = report_reader.communicate(timeout=300)
    assert reader.returncode == 0, err[-3000:]
    assert report_reader.returncode == 0, report_err[-3000:]
    reports = json.loads(report_out.strip().splitlines()[-1])
    print(f"report reader: {len(reports['reports'])} reports")
    assert reports["error_count"] == 0, reports["errors"]
    assert all(start == end for start, end in reports["reports"]), (
        "a held connection saw the warehouse change between two of its queries"
    )
    assert not [r for r in reports["reports"] if r[0][0] != r[0][1]], "identity broken"
    report = json.loads(out.strip().splitlines()[-1])
    print(f"reader: {len(report['snapshots'])} snapshots")
    assert report["error_count"] == 0, report["errors"]
    assert held.execute(RECONCILIATION_SQL).fetchone() == held_first
    held.close()
    held_file.seek(0)
    assert hashlib.sha256(held_file.read()).hexdigest() == held_bytes, (
        "publish wrote into the file readers had open instead of replacing it"
    )
    held_file.close()
    snapshots = report["snapshots"]
    broken = [s for s in snapshots if s[0] != s[1]]
    assert not broken, (
        f"{len(broken)} of {len(snapshots)} snapshots broke the identity: {broken[:3]}"
    )
    # the reader really saw the warehouse change under it
    assert len({s[0] for s in snapshots}) >= 2, "the reader saw only one published state"


# --- PostgreSQL ------------------------------------------------------------------------


def _pg_state(url: str) -> dict:
    """Every published table with its OID and a hash of its rows."""
    with pg_connect(url) as con:
        tables = con.execute(
            "select n.nspname, c.relname, c.oid::bigint from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') "
            "and n.nspname not like 'pg_toast%'"
        ).fetchall()
        out = {}
        for schema, table, oid in tables:
            digest = con.execute(
                f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
                f'from {schema}."{table}" t'
            ).fetchone()[0]
            out[f"{schema}.{table}"] = (oid, digest)
    return out


@pytest.fixture
def pg_settings(postgres_marts):
    from sqlalchemy.engine import make_url

    name = f"{make_url(postgres_marts.postgres_url).database}_published"
    settings = dataclasses.replace(
        postgres_marts,
        published_postgres_url=postgres_marts.postgres_url.rsplit("/", 1)[0] + f"/{name}",
    )
    drop_pg_database(name)
    yield settings
    drop_pg_database(name)


@pytest.mark.usefixtures("fixed_data_docs")
def test_postgres_publish_swaps_schemas_and_a_blocked_run_changes_nothing(pg_settings):
    settings = pg_settings
    first = run("pg__1")
    audit.record_run_start(settings, first)
    publish.publish(settings, first)
    state = _pg_state(settings.published_postgres_url)
    assert {k.split(".")[0] for k in state} == {"marts", "audit"}
    with pg_connect(settings.postgres_url) as con:
        marts = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
    assert {k.split(".")[1] for k in state if k.startswith("marts.")} == marts

    # a reader in the middle of a transaction on the old tables neither blocks the next
    # publish nor is disturbed by it
    with psycopg.connect(settings.published_postgres_url) as reader:
        before = reader.execute("select count(*) from marts.fct_orders").fetchone()
        second = run("pg__2")
        audit.record_run_start(settings, second)
        started = time.monotonic()
        publish.publish(settings, second)
        assert time.monotonic() - started < 60
        (retired,) = reader.execute(
            "select nspname from pg_namespace where nspname like 'marts_old_%'"
        ).fetchone()
        assert reader.execute(f"select count(*) from {retired}.fct_orders").fetchone() == before
    third = run("pg__3")
    audit.record_run_start(settings, third)
    publish.publish(settings, third)  # drops the schema the reader held, and its own
    state = _pg_state(settings.published_postgres_url)
    assert {k.split(".")[0] for k in state} == {"marts", "audit"}
    with pg_connect(settings.published_postgres_url) as con:
        assert con.execute(
            "select status from audit.pipeline_runs where run_id = 'pg__3'"
        ).fetchone() == ("published",)

    blocked = run("pg__4")
    audit.record_run_start(settings, blocked)
    with pytest.raises(QualityGateBlocked):
        enforce_quality_gate(
            settings, blocked, "marts", [BLOCKING], airflow_context(blocked, "validate_marts")
        )
    assert _pg_state(settings.published_postgres_url) == state
    with pg_connect(settings.postgres_url) as con:
        assert con.execute(
            "select status from audit.pipeline_runs where run_id = 'pg__4'"
        ).fetchone() == ("blocked",)
