"""The audit trail of docs/quality.md in the working warehouse: runs, check results, quarantine.

- ``audit.pipeline_runs``: one row per DAG run (``dag_id``, ``run_id``), with its logical
  date, data interval, as-of date, start and end, status and a message saying why a run
  was blocked or failed. Status: ``running``, then ``published`` (transform),
  ``succeeded`` (a run that does not publish, e.g. an ingest), ``blocked`` or ``failed``.
- ``audit.pipeline_run_entities``: rows read / loaded / quarantined per source entity of a
  run, one row each (a child table rather than JSON, so the report and SQL users can sum
  and join without JSON functions that differ between DuckDB and PostgreSQL).
- ``audit.dq_results``: one row per table-level check of a run.
- ``audit.quarantine``: a view over every ``raw_<source>._quarantine`` the loaders wrote.

Airflow run ids repeat across DAGs (``manual__<date>``, ``scheduled__<date>``), so a run is
identified by ``(dag_id, run_id)``; both are columns of every table.

Every write is one transaction on the working warehouse (DuckDB or PostgreSQL alike) and is
made by a task holding the ``warehouse_writer`` pool slot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from ops_warehouse.pipeline.contracts import QUARANTINE_TABLE
from ops_warehouse.settings import Settings

if TYPE_CHECKING:
    from ops_warehouse.pipeline.quality.results import CheckResult

log = logging.getLogger(__name__)

SCHEMA = "audit"
STATUSES = ("running", "published", "succeeded", "blocked", "failed")

AUDIT_TABLES = ("pipeline_runs", "pipeline_run_entities", "dq_results")


def ddl(schema: str = SCHEMA) -> tuple[str, ...]:
    """The audit tables, created in ``schema`` (the publish step builds them in a copy)."""
    return (
        f"create schema if not exists {schema}",
        f"""
        create table if not exists {schema}.pipeline_runs (
            dag_id varchar not null,
            run_id varchar not null,
            logical_date timestamp with time zone,
            data_interval_start timestamp with time zone,
            data_interval_end timestamp with time zone,
            as_of_date date,
            started_at timestamp with time zone not null,
            finished_at timestamp with time zone,
            status varchar not null,
            message varchar,
            primary key (dag_id, run_id)
        )
        """,
        f"""
        create table if not exists {schema}.pipeline_run_entities (
            dag_id varchar not null,
            run_id varchar not null,
            source varchar not null,
            entity varchar not null,
            rows_read bigint not null,
            rows_loaded bigint not null,
            rows_quarantined bigint not null,
            source_rows bigint,
            raw_rows bigint,
            primary key (dag_id, run_id, source, entity)
        )
        """,
        # warehouses made before the per-load reconciliation with the source
        f"alter table {schema}.pipeline_run_entities add column if not exists source_rows bigint",
        f"alter table {schema}.pipeline_run_entities add column if not exists raw_rows bigint",
        f"""
        create table if not exists {schema}.dq_results (
            dag_id varchar not null,
            run_id varchar not null,
            suite varchar not null,
            "check" varchar not null,
            "column" varchar,
            severity varchar not null,
            success boolean not null,
            unexpected_count bigint,
            observed_value varchar,
            checked_at timestamp with time zone not null
        )
        """,
    )


QUARANTINE_COLUMNS = (
    "run_id",
    "source",
    "entity",
    "record_key",
    "reason",
    "payload",
    "quarantined_at",
)


@dataclass(frozen=True)
class RunInfo:
    """What identifies and dates one DAG run (taken from the Airflow context)."""

    dag_id: str
    run_id: str
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None


@dataclass(frozen=True)
class EntityCounts:
    """One source entity's rows in one run: read = loaded + quarantined; and, after the load,
    the rows the source says it holds (None where it cannot tell) and the rows raw holds."""

    source: str
    entity: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    source_rows: int | None = None
    raw_rows: int | None = None


class Db:
    """One connection and transaction on the working warehouse; ``?`` placeholders."""

    def __init__(self, con: Any, engine: str) -> None:
        self.con = con
        self.engine = engine

    def execute(self, sql: str, params: Sequence[Any] = ()):
        if self.engine == "postgres":
            sql = sql.replace("?", "%s")
        return self.con.execute(sql, list(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [list(r) for r in rows]
        if not rows:
            return
        if self.engine == "postgres":
            with self.con.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)
        else:
            self.con.executemany(sql, rows)

    def tables(self, schema: str) -> list[str]:
        """Base tables and views of one schema, by name."""
        return [
            r[0]
            for r in self.execute(
                "select table_name from information_schema.tables where table_schema = ? "
                "order by table_name",
                [schema],
            ).fetchall()
        ]


def pg_connect(url: str, **kwargs):
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(
        host=u.host,
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=u.database,
        **kwargs,
    )


@contextmanager
def connect(settings: Settings) -> Iterator[Db]:
    """A read-write transaction on the working warehouse: committed on success, else rolled
    back. Only a task holding the writer pool slot may call it."""
    if settings.warehouse == "postgres":
        with pg_connect(settings.postgres_url) as con:  # commits on exit, rolls back on error
            yield Db(con, "postgres")
        return
    import duckdb

    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.begin()
        yield Db(con, "duckdb")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.close()


def ensure_schema(db: Db) -> None:
    """Create the audit tables if missing and (re)create the quarantine view over every
    quarantine table that exists now (a source's first quarantined row creates its table)."""
    for statement in ddl():
        db.execute(statement)
    sources = [
        r[0]
        for r in db.execute(
            "select table_schema from information_schema.tables "
            "where substr(table_schema, 1, 4) = 'raw_' and table_name = ? order by table_schema",
            [QUARANTINE_TABLE],
        ).fetchall()
    ]
    casts = {
        "payload": "varchar",
        "quarantined_at": "timestamp with time zone",
    }

    def select(frm: str | None) -> str:
        cols = ", ".join(
            f"cast({c} as {casts.get(c, 'varchar')}) as {c}" for c in QUARANTINE_COLUMNS
        )
        if frm is None:  # no source has quarantined anything yet: an empty view, same columns
            cols = ", ".join(
                f"cast(null as {casts.get(c, 'varchar')}) as {c}" for c in QUARANTINE_COLUMNS
            )
            return f"select {cols} where 1 = 0"
        return f'select {cols} from {frm}."{QUARANTINE_TABLE}"'

    body = "\nunion all\n".join(select(s) for s in sources) if sources else select(None)
    db.execute(f"create or replace view {SCHEMA}.quarantine as\n{body}")


def _now() -> datetime:
    return datetime.now(UTC)


def record_run_start(settings: Settings, run: RunInfo, as_of: date | None = None) -> None:
    """Mark a run ``running`` (a retry of the run's first task starts it again)."""
    with connect(settings) as db:
        ensure_schema(db)
        db.execute(
            f"""
            insert into {SCHEMA}.pipeline_runs (dag_id, run_id, logical_date,
                data_interval_start, data_interval_end, as_of_date, started_at, status)
            values (?, ?, ?, ?, ?, ?, ?, 'running')
            on conflict (dag_id, run_id) do update set
                logical_date = excluded.logical_date,
                data_interval_start = excluded.data_interval_start,
                data_interval_end = excluded.data_interval_end,
                as_of_date = excluded.as_of_date,
                started_at = excluded.started_at,
                finished_at = null,
                status = 'running',
                message = null
            """,
            [
                run.dag_id,
                run.run_id,
                run.logical_date,
                run.data_interval_start,
                run.data_interval_end,
                as_of,
                _now(),
            ],
        )


def finish_run(
    db: Db,
    run: RunInfo,
    status: str,
    *,
    message: str | None = None,
    entities: Iterable[EntityCounts] = (),
    finished_at: datetime | None = None,
    only_if_running: bool = False,
    schema: str = SCHEMA,
) -> None:
    """Set a run's final status in an open transaction (also used on the published copy,
    whose audit tables live in ``schema``).

    ``only_if_running``: leave a run that already has a final status alone (a failure
    callback after the run was published or blocked must not rewrite what happened)."""
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}; expected one of {STATUSES}")
    finished_at = finished_at or _now()
    keep = "where pipeline_runs.status = 'running'" if only_if_running else ""
    db.execute(
        f"""
        insert into {schema}.pipeline_runs (dag_id, run_id, logical_date, data_interval_start,
            data_interval_end, started_at, finished_at, status, message)
        values (?, ?, ?, ?, ?, ?, ?, ?, ?)
        on conflict (dag_id, run_id) do update set
            finished_at = excluded.finished_at,
            status = excluded.status,
            message = excluded.message
        {keep}
        """,
        [
            run.dag_id,
            run.run_id,
            run.logical_date,
            run.data_interval_start,
            run.data_interval_end,
            finished_at,
            finished_at,
            status,
            message,
        ],
    )
    entities = list(entities)
    if entities:
        db.execute(
            f"delete from {schema}.pipeline_run_entities where dag_id = ? and run_id = ?",
            [run.dag_id, run.run_id],
        )
        db.executemany(
            f"""insert into {schema}.pipeline_run_entities (dag_id, run_id, source, entity,
                rows_read, rows_loaded, rows_quarantined, source_rows, raw_rows)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    run.dag_id,
                    run.run_id,
                    e.source,
                    e.entity,
                    e.rows_read,
                    e.rows_loaded,
                    e.rows_quarantined,
                    e.source_rows,
                    e.raw_rows,
                )
                for e in entities
            ],
        )


def record_run_finish(
    settings: Settings,
    run: RunInfo,
    status: str,
    *,
    message: str | None = None,
    entities: Iterable[EntityCounts] = (),
    only_if_running: bool = False,
    finished_at: datetime | None = None,
) -> None:
    """Record how a run ended, and the rows per source entity it read, loaded and
    quarantined (ingest runs)."""
    with connect(settings) as db:
        ensure_schema(db)
        finish_run(
            db,
            run,
            status,
            message=message,
            entities=entities,
            only_if_running=only_if_running,
            finished_at=finished_at,
        )


def record_dq_results(settings: Settings, run: RunInfo, results: Sequence[CheckResult]) -> None:
    """Store a run's check results; a retried validation replaces its earlier results of
    the same suites."""
    checked_at = _now()
    with connect(settings) as db:
        ensure_schema(db)
        for suite in sorted({r.suite for r in results}):
            db.execute(
                f"delete from {SCHEMA}.dq_results where dag_id = ? and run_id = ? and suite = ?",
                [run.dag_id, run.run_id, suite],
            )
        db.executemany(
            f"""insert into {SCHEMA}.dq_results (dag_id, run_id, suite, "check", "column",
                severity, success, unexpected_count, observed_value, checked_at)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                (
                    run.dag_id,
                    run.run_id,
                    r.suite,
                    r.check,
                    r.column,
                    r.severity,
                    r.success,
                    r.unexpected_count,
                    r.observed_value,
                    checked_at,
                )
                for r in results
            ],
        )
