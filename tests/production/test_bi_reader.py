"""The read-only BI role on PostgreSQL, checked with real connections as that role: it reads
every mart, survives the publish schema swap, and can read nothing else nor write anything."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import uuid

import psycopg
import pytest
from psycopg import errors

from ops_warehouse.pipeline import audit
from ops_warehouse.warehouse import bi_access, publish
from ops_warehouse.warehouse.bi_access import BiAccessError, setup_bi_reader
from ops_warehouse.warehouse.engines import pg_connect
from tests.conftest import drop_pg_database
from tests.helpers import MART_TABLES
from tests.quality.wap import fixed_data_docs, run  # noqa: F401 (fixture)

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def drop_role(role: str) -> None:
    """Drop a test role and whatever privileges it still holds (grants on shared objects)."""
    with psycopg.connect(ADMIN, autocommit=True) as con:
        if con.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
            con.execute(f'drop owned by "{role}"')
            con.execute(f'drop role "{role}"')


@pytest.fixture
def bi(postgres_marts, monkeypatch):
    """Settings on the built PostgreSQL marts with a private published database and a
    uniquely named reader role (roles are cluster-wide), both dropped afterwards."""
    role = f"bi_reader_t{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(bi_access, "BI_READER_ROLE", role)
    base = postgres_marts.postgres_url.rsplit("/", 1)
    name = f"{base[1]}_bi_published"
    settings = dataclasses.replace(
        postgres_marts,
        published_postgres_url=f"{base[0]}/{name}",
        bi_reader_password=secrets.token_urlsafe(16),
    )
    drop_pg_database(name)
    yield settings, role
    drop_pg_database(name)
    drop_role(role)


def as_role(settings, role: str, database_url: str | None = None) -> psycopg.Connection:
    from sqlalchemy.engine import make_url

    url = make_url(database_url or settings.published_postgres_url)
    return psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        dbname=url.database,
        user=role,
        password=settings.bi_reader_password,
        autocommit=True,
    )


def denied(con: psycopg.Connection, statement: str) -> bool:
    try:
        con.execute(statement)
    except errors.InsufficientPrivilege:
        return True
    return False


def published(settings, run_id: str) -> None:
    this = run(run_id)
    audit.record_run_start(settings, this)
    publish.publish(settings, this)


@pytest.mark.usefixtures("fixed_data_docs")
def test_bi_reader_reads_every_mart_and_nothing_else(bi):
    settings, role = bi
    status = setup_bi_reader(settings, role)  # before any publish: role, no marts yet
    assert status.created and status.tables == ()
    with psycopg.connect(ADMIN) as con:
        assert con.execute(
            "select rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolpassword is not null "
            "from pg_authid where rolname = %s",
            [role],
        ).fetchone() == (True, False, False, False, True)

    published(settings, "bi__1")
    published(settings, "bi__2")  # a second swap: the grants must follow the new marts

    with pg_connect(settings.published_postgres_url) as con:
        schemas = {r[0] for r in con.execute("select nspname from pg_namespace").fetchall()}
        con.execute("create table marts.added_later as select 1 as n")  # default privileges
        con.commit()
    assert {"marts", "audit"} <= schemas
    assert not any(s.startswith("marts_old_") for s in schemas), "old schemas were dropped"

    with as_role(settings, role) as reader:
        for table in (*MART_TABLES, "added_later"):
            reader.execute(f"select count(*) from marts.{table}").fetchone()
        # audit: run history and quarantine payloads are not for BI tools
        for table in ("quarantine", "pipeline_runs", "pipeline_run_entities", "dq_results"):
            assert denied(reader, f"select * from audit.{table}"), f"audit.{table} readable"
        # no write, no DDL, no temporary tables
        for statement in (
            "insert into marts.dim_date (date_day) values ('2000-01-01')",
            "update marts.fct_orders set net_revenue = 0",
            "delete from marts.fct_orders",
            "truncate marts.kpi_daily",
            "drop table marts.kpi_daily",
            "create table marts.mine (n int)",
            "create table public.mine (n int)",
            "create schema mine",
            "create temporary table mine (n int)",
            "alter table marts.kpi_daily add column x int",
        ):
            assert denied(reader, statement), f"bi_reader could run: {statement}"
        assert reader.execute("select count(*) from marts.fct_orders").fetchone()[0] > 0

    # the working database (raw, staging, intermediate, audit with raw payloads)
    with pg_connect(settings.postgres_url) as con:
        tables = con.execute(
            "select schemaname, tablename from pg_tables where schemaname not in "
            "('pg_catalog', 'information_schema') union all select schemaname, viewname "
            "from pg_views where schemaname not in ('pg_catalog', 'information_schema')"
        ).fetchall()
    assert {s for s, _ in tables} >= {"raw_sales", "raw_support", "raw_marketing", "marts"}
    with as_role(settings, role, settings.postgres_url) as reader:
        readable = [f"{s}.{t}" for s, t in tables if not denied(reader, f'select 1 from {s}."{t}"')]
    assert readable == [], f"bi_reader can read the working warehouse: {readable[:5]}"


@pytest.mark.usefixtures("fixed_data_docs")
def test_a_bi_reader_querying_through_publishes_never_loses_access(bi):
    """Grants are given inside the swap transaction: a query arriving just after the swap
    finds the new marts already readable."""
    settings, role = bi
    published(settings, "bi__1")
    setup_bi_reader(settings, role)
    stop, errors_seen, queries = threading.Event(), [], [0]

    def loop():
        with as_role(settings, role) as reader:
            while not stop.is_set():
                try:
                    reader.execute("select sum(net_revenue) from marts.kpi_daily").fetchone()
                    queries[0] += 1
                except psycopg.Error as exc:
                    errors_seen.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        for n in range(3):
            published(settings, f"bi__{n + 2}")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert queries[0] > 0
    assert errors_seen == []


def test_bad_role_names_and_duckdb_are_refused(bi, duckdb_marts):
    settings, _ = bi
    with pytest.raises(BiAccessError, match="not a usable role name"):
        setup_bi_reader(settings, 'bi"; drop table x; --')
    with pytest.raises(BiAccessError, match="OPS_WAREHOUSE is 'duckdb'"):
        setup_bi_reader(duckdb_marts)
