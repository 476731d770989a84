"""The audit trail of docs/quality.md in the working warehouse: runs, check results, quarantine.

- ``audit.pipeline_runs``: one row per DAG run (``dag_id``, ``run_id``), with its logical
  date, data interval, as-of date, start and end, status and a message saying why a run
  was blocked or failed. Status: ``running``, then ``published`` (transform),
  ``succeeded`` (a run that does not publish, e.g. an ingest), ``blocked`` or ``failed``.
- ``audit.pipeline_run_entities``: rows read / loaded / quarantined per source entity of a
  run, one row each (a child table rather than JSON, so the report and SQL users can sum
  and join without JSON functions that differ between DuckDB and PostgreSQL).
- ``audit.dq_results``: one row per table-level check of a run.
- ``audit.validated_loads`` (working warehouse only): per checked table, the newest
  ``_loaded_at`` a passing gate vouched for; an incremental day's row checks read the rows
  after it.
- ``audit.quarantine``: a view over every ``raw_<source>._quarantine`` the loaders wrote,
  with the as-of date of the run that quarantined each row.
- ``audit.published_marts`` (published warehouse only): each published mart's fingerprint,
  row count and the run that wrote it; the publish step keeps it.

Airflow run ids repeat across DAGs (``manual__<date>``, ``scheduled__<date>``), so a run is
identified by ``(dag_id, run_id)``; both are columns of every table.

Every write is one transaction on the working warehouse (DuckDB or PostgreSQL alike) and is
made by a task holding the ``warehouse_writer`` pool slot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from ops_warehouse.pipeline.contracts import QUARANTINE_TABLE, SOURCES, raw_schema
from ops_warehouse.redact import redact
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.engines import AUDIT_SCHEMA, Connection, engine

if TYPE_CHECKING:
    from ops_warehouse.pipeline.quality.results import CheckResult

log = logging.getLogger(__name__)

SCHEMA = AUDIT_SCHEMA
STATUSES = ("running", "published", "succeeded", "blocked", "failed")

AUDIT_TABLES = ("pipeline_runs", "pipeline_run_entities", "dq_results")
# the longest run message kept (an error with a long traceback-like text is cut)
MESSAGE_CHARS = 2000


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


# Kept only in the working warehouse: each removal of rows from a raw table (an orphan swept
# into quarantine, a ticket deleted at the source, raw rebuilt from the archive), until the
# staging build of that table has dropped the keys raw no longer holds. An incremental day's
# staging build looks for such keys (a whole-table anti-join of staging against raw) only
# where a removal is pending: dbt_project/macros/incremental_staging.sql,
# delete_keys_gone_from_raw, which marks it applied in the same transaction.
RAW_REMOVALS = "raw_removals"


def raw_removals_ddl(schema: str = SCHEMA) -> str:
    return f"""
        create table if not exists {schema}.{RAW_REMOVALS} (
            raw_table varchar not null,
            removed_at timestamp with time zone not null,
            removed_rows bigint,
            reason varchar not null,
            applied_at timestamp with time zone
        )
        """


def record_raw_removal(
    db: Connection, raw_table: str, removed_rows: int | None, reason: str
) -> None:
    """Record that rows of ``raw_table`` (``raw_<source>.<entity>``) are removed or may be, in
    the transaction ``db`` that removes them (or before it: a removal recorded that did not
    happen costs the next build one anti-join, one that happened unrecorded would leave its
    keys in staging until the weekly full build)."""
    db.execute(f"create schema if not exists {SCHEMA}")
    db.execute(raw_removals_ddl())
    db.execute(
        f"insert into {SCHEMA}.{RAW_REMOVALS} (raw_table, removed_at, removed_rows, reason) "
        "values (?, ?, ?, ?)",
        [raw_table, _now(), removed_rows, reason],
    )


# Kept only in the published warehouse (the publish step writes it): what each published mart
# holds (its fingerprint, see ops_warehouse.warehouse.publish) and the run that wrote it. The
# next publish compares the working marts' fingerprints with it and rewrites only those that
# differ; the run that published a kept mart stays its ``run_id``.
PUBLISHED_MARTS = "published_marts"


def published_marts_ddl(schema: str = SCHEMA) -> str:
    """``published_marts`` in ``schema`` (of the published copy)."""
    return f"""
        create table if not exists {schema}.{PUBLISHED_MARTS} (
            table_name varchar not null primary key,
            fingerprint varchar not null,
            row_count bigint not null,
            dag_id varchar not null,
            run_id varchar not null,
            published_at timestamp with time zone not null
        )
        """


# The columns of every raw_<source>._quarantine table; the loaders and the sweep write all
# but ``replayed_at``, which ``ops replay`` sets on the rows it moved into raw.
QUARANTINE_COLUMNS = (
    "run_id",
    "source",
    "entity",
    "record_key",
    "reason",
    "payload",
    "quarantined_at",
    "replayed_at",
)
# The view's columns: the tables' and the as-of date of the run that quarantined the row.
QUARANTINE_VIEW_COLUMNS = (*QUARANTINE_COLUMNS, "as_of_date")
_QUARANTINE_TYPES = {
    "payload": "varchar",
    "quarantined_at": "timestamp with time zone",
    "replayed_at": "timestamp with time zone",
}


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


@contextmanager
def connect(settings: Settings) -> Iterator[Connection]:
    """A read-write transaction on the working warehouse: committed on success, else rolled
    back. Only a task holding the writer pool slot may call it."""
    with engine(settings).transaction() as db:
        yield db


def ensure_schema(db: Connection) -> None:
    """Create the audit tables if missing and (re)create the quarantine view over every
    quarantine table that exists now (a source's first quarantined row creates its table)."""
    for statement in ddl():
        db.execute(statement)
    db.execute(raw_removals_ddl())
    # dropped first: PostgreSQL replaces a view only when its columns stay as they were
    db.execute(f"drop view if exists {SCHEMA}.quarantine")
    db.execute(f"create view {SCHEMA}.quarantine as\n{quarantine_view_sql(db)}")


def quarantine_view_sql(db: Connection) -> str:
    """``audit.quarantine``: the rows of every ``raw_<source>._quarantine``, each with the
    as-of date of the ingest run that quarantined it.

    Only the sources' own schemas are read: dlt's merge also leaves a copy of the last load's
    rows in ``raw_<source>_staging._quarantine``, which would count every row twice. The
    as-of date comes from ``pipeline_runs`` (the ingest runs sharing the row's run id; the
    scheduled runs of one day share theirs), so a day's quarantine is reported with that day
    however late its run ran; a row no recorded run wrote (``ops load``, a test) is dated by
    when it was quarantined."""
    present: dict[str, set[str]] = {}
    for schema, column in db.fetch(
        "select table_schema, column_name from information_schema.columns where table_name = ?",
        [QUARANTINE_TABLE],
    ):
        present.setdefault(schema, set()).add(column)

    def typed(column: str, value: str) -> str:
        return f"cast({value} as {_QUARANTINE_TYPES.get(column, 'varchar')}) as {column}"

    selects = [
        "select "
        # a table no replay has touched yet has no replayed_at
        + ", ".join(typed(c, c if c in present[schema] else "null") for c in QUARANTINE_COLUMNS)
        + f' from {schema}."{QUARANTINE_TABLE}"'
        for schema in (raw_schema(source) for source in SOURCES)
        if schema in present
    ]
    if not selects:  # no source has quarantined anything yet: an empty view, same columns
        selects = [
            "select " + ", ".join(typed(c, "null") for c in QUARANTINE_COLUMNS) + " where 1 = 0"
        ]
    union = "\nunion all\n".join(selects)
    return f"""
        select q.*, coalesce(r.as_of_date, cast(q.quarantined_at as date)) as as_of_date
        from (
        {union}
        ) q
        left join (
            select run_id, max(as_of_date) as as_of_date from {SCHEMA}.pipeline_runs
            where substr(dag_id, 1, 7) = 'ingest_' group by run_id
        ) r on r.run_id = q.run_id
        """


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
    db: Connection,
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
            # error text often quotes a URL or a connection string: its secrets stay out
            # (redacted before it is shortened, so that no secret is cut in half)
            redact(message)[:MESSAGE_CHARS] if message else message,
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
                    # a check that could not run observes its error ("error: …")
                    redact(r.observed_value) if r.observed_value else r.observed_value,
                    checked_at,
                )
                for r in results
            ],
        )


# Kept only in the working warehouse (the gate's bookkeeping, not a reader's table): one row per
# table and run whose gate passed, with the table's newest ``_loaded_at`` it vouched for. An
# incremental day's row checks read the rows after the latest one
# (ops_warehouse.pipeline.quality.gx_runner); a blocked gate writes nothing, so the next run
# checks those rows again.
VALIDATED_LOADS = "validated_loads"


def validated_loads_ddl(schema: str = SCHEMA) -> str:
    return f"""
        create table if not exists {schema}.{VALIDATED_LOADS} (
            table_name varchar not null,
            loaded_through timestamp with time zone not null,
            dag_id varchar not null,
            run_id varchar not null,
            validated_at timestamp with time zone not null,
            primary key (table_name, dag_id, run_id)
        )
        """


def record_validated_loads(settings: Settings, run: RunInfo, loads: Mapping[str, datetime]) -> None:
    """Record, after a gate passed, the newest ``_loaded_at`` of each table it vouched for
    (``gx_runner.newest_loads``, read before the checks ran). A retried run replaces its rows
    of the same tables."""
    validated_at = _now()
    with connect(settings) as db:
        ensure_schema(db)
        db.execute(validated_loads_ddl())
        rows = [
            (table, loaded_through, run.dag_id, run.run_id, validated_at)
            for table, loaded_through in sorted(loads.items())
        ]
        db.executemany(
            f"delete from {SCHEMA}.{VALIDATED_LOADS} where table_name = ? and dag_id = ? "
            "and run_id = ?",
            [row[:1] + row[2:4] for row in rows],
        )
        db.executemany(
            f"""insert into {SCHEMA}.{VALIDATED_LOADS} (table_name, loaded_through, dag_id,
                run_id, validated_at) values (?, ?, ?, ?, ?)""",
            rows,
        )
