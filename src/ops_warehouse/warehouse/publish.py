"""Publish: make a validated working warehouse what readers see, in one atomic step.

Called only after every blocking check of the run passed (write → audit → publish). Only
the schemas readers need are published: ``marts`` and ``audit`` (with the quarantine view
materialized, its payloads cut down to the contract's fields with personal data hashed and
free text left out); raw, staging and intermediate stay in the working warehouse.

- DuckDB: a new file is written next to ``settings.published_path`` (ATTACH, CREATE TABLE
  … AS SELECT, CHECKPOINT, DETACH, fsync), then ``os.replace``-d onto it. A reader that has
  the old file open keeps reading its snapshot (the old inode lives on until it closes);
  new connections open the new file; nobody waits for anybody. The temporary files of a
  publish that was killed half-way are deleted by the next one. The file is written in the
  storage format of ``OPS_PUBLISHED_STORAGE_VERSION`` (v1.0.0: DuckDB 1.1 and later read
  it), and readers in long-lived processes open it through ``readers``.
- PostgreSQL: the published warehouse is its own database (``OPS_PUBLISHED_POSTGRES_URL``),
  the counterpart of the published file. Tables are streamed into ``marts_next`` /
  ``audit_next`` (binary COPY), then one transaction renames ``marts`` → ``marts_old_<id>``,
  ``marts_next`` → ``marts`` (and the same for ``audit``). The old schemas are dropped
  afterwards, each in a transaction that gives up after a short lock timeout rather than
  queue readers behind it (a leftover is dropped by the next publish).

With ``OPS_PARQUET_EXPORT_DIR`` set, a DuckDB publish also writes each mart as a Parquet
file (``parquet_export``). On PostgreSQL the read-only ``bi_reader`` role (``bi_access``)
is granted the new ``marts`` inside the swap transaction, when the role exists.

A run that does not reach this step leaves the published warehouse untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

from ops_warehouse.errors import PublishError
from ops_warehouse.files import fsync, sql_literal
from ops_warehouse.pipeline import audit
from ops_warehouse.pipeline.audit import RunInfo
from ops_warehouse.pipeline.contracts import BY_NAME, FREE_TEXT_FIELDS, PERSONAL_FIELDS
from ops_warehouse.pipeline.transform import MARTS
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse import bi_access
from ops_warehouse.warehouse.databases import ensure_published_database
from ops_warehouse.warehouse.engines import Connection, pg_connect
from ops_warehouse.warehouse.parquet_export import export_marts

log = logging.getLogger(__name__)

PUBLISHED_SCHEMAS = (MARTS, audit.SCHEMA)
# How the PostgreSQL publish waits for readers' locks before leaving the old schemas
# for the next publish to drop.
DROP_LOCK_TIMEOUT = "2s"
# The DuckDB publish's temporary file beside the published one (and DuckDB's WAL of it):
# ``.<published name>.<uuid4 hex>.next``. A publish killed half-way leaves one behind; the
# next publish deletes what matches, and nothing else.
STAGED_NAME = r"\.{name}\.[0-9a-f]{{32}}\.next(\.wal)?"


def published_payload(entity: str | None, payload: str | None) -> str | None:
    """A quarantined row's JSON payload as readers of the published warehouse get it.

    The working warehouse keeps payloads as served (replay needs them). Published are only
    the fields the contract gives the row's entity: personal fields as
    sha256(lower(trim(value))), like the marts' ``email_sha256``; free text (a ticket's
    subject, …) and fields the contract does not know (schema drift: anything may be in them)
    are left out and named under ``_withheld``."""
    if payload is None:
        return None
    try:
        record = json.loads(payload)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return json.dumps({"_withheld": "the payload is not a JSON object"})
    known = set(BY_NAME[entity].field_names) if entity in BY_NAME else set()
    published: dict = {}
    withheld = []
    for key, value in record.items():
        if key not in known or key in FREE_TEXT_FIELDS:
            withheld.append(key)
        elif key in PERSONAL_FIELDS and value is not None:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            published[key] = hashlib.sha256(text.strip().lower().encode()).hexdigest()
        else:
            published[key] = value
    if withheld:
        published["_withheld"] = sorted(withheld)
    return json.dumps(published, sort_keys=True)


def publish(settings: Settings, run: RunInfo) -> str:
    """Publish the working warehouse's marts and audit; return where readers find them.

    The run is recorded as ``published`` in the published copy itself and, once the copy is
    in place, in the working warehouse."""
    finished_at = datetime.now(UTC)
    with audit.connect(settings) as db:
        # raw_<source>._quarantine tables appear with a source's first bad row
        audit.ensure_schema(db)
        marts = db.tables(MARTS)
    if not marts:
        raise PublishError(
            f"the working warehouse has no tables in schema {MARTS!r}: run dbt build first"
        )
    if settings.warehouse == "postgres":
        where = _publish_postgres(settings, run, finished_at)
        if settings.parquet_export_dir:
            log.warning(
                "OPS_PARQUET_EXPORT_DIR is set but the warehouse is PostgreSQL: the Parquet "
                "export is made from the published DuckDB file only; BI tools read PostgreSQL"
            )
    else:
        where = str(_publish_duckdb(settings, run, finished_at))
        if settings.parquet_export_dir:
            files = export_marts(settings.published_path, settings.parquet_export_dir)
            log.info(
                "exported %d mart tables as Parquet to %s", len(files), settings.parquet_export_dir
            )
    audit.record_run_finish(settings, run, "published", finished_at=finished_at)
    log.info("published %d mart tables and the audit trail to %s", len(marts), where)
    return where


# --- DuckDB --------------------------------------------------------------------------


def _publish_duckdb(settings: Settings, run: RunInfo, finished_at: datetime) -> Path:
    import duckdb
    import pyarrow as pa

    target = settings.published_path
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    # Same folder, so os.replace is a rename within one file system.
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}.next")
    try:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        try:
            db = Connection(con, "duckdb")
            # written in the storage format of OPS_PUBLISHED_STORAGE_VERSION, so that BI tools
            # bundling an older DuckDB (1.x) can open it too
            con.execute(
                f"attach '{sql_literal(staged)}' as next (read_only false, "
                f"storage_version '{settings.published_storage_version}')"
            )
            con.execute(f"create schema next.{MARTS}")
            for table in db.tables(MARTS):
                con.execute(
                    f'create table next.{MARTS}."{table}" as select * from {MARTS}."{table}"'
                )
            for statement in audit.ddl(f"next.{audit.SCHEMA}"):
                con.execute(statement)
            for table in audit.AUDIT_TABLES:
                con.execute(
                    f"insert into next.{audit.SCHEMA}.{table} select * from {audit.SCHEMA}.{table}"
                )
            quarantine = con.sql(f"select * from {audit.SCHEMA}.quarantine").to_arrow_table()
            payloads = zip(
                quarantine["entity"].to_pylist(), quarantine["payload"].to_pylist(), strict=True
            )
            masked = quarantine.set_column(
                quarantine.schema.get_field_index("payload"),
                "payload",
                pa.array([published_payload(e, p) for e, p in payloads], pa.string()),
            )
            con.register("quarantine_masked", masked)
            con.execute(
                f"create table next.{audit.SCHEMA}.quarantine as select * from quarantine_masked"
            )
            con.unregister("quarantine_masked")
            audit.finish_run(
                db, run, "published", finished_at=finished_at, schema=f"next.{audit.SCHEMA}"
            )
            con.execute("checkpoint next")
            con.execute("detach next")
        finally:
            con.close()
        fsync(staged)
        os.replace(staged, target)
        fsync(target.parent)
    finally:
        for leftover in (staged, staged.with_name(staged.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return target


def remove_leftovers(target: Path) -> list[Path]:
    """Delete the temporary files that publishes killed half-way left beside ``target``
    (only names of the publish's own pattern). Publishes never run side by side (the
    writer pool, the writer lock), so none of them is in use."""
    pattern = re.compile(STAGED_NAME.format(name=re.escape(target.name)))
    removed = []
    for path in target.parent.iterdir():
        if pattern.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.warning(
            "deleted %d file(s) an interrupted publish left: %s",
            len(removed),
            ", ".join(p.name for p in removed),
        )
    return removed


# --- PostgreSQL ----------------------------------------------------------------------


def _publish_postgres(settings: Settings, run: RunInfo, finished_at: datetime) -> str:
    from sqlalchemy.engine import make_url

    ensure_published_database(settings)
    nxt = {schema: f"{schema}_next" for schema in PUBLISHED_SCHEMAS}
    with (
        pg_connect(settings.postgres_url) as src,
        pg_connect(settings.published_postgres_url) as dst,
    ):
        work = Connection(src, "postgres")
        pub = Connection(dst, "postgres")
        for schema in nxt.values():
            pub.execute(f"drop schema if exists {schema} cascade")
        pub.execute(f"create schema {nxt[MARTS]}")
        for table in work.tables(MARTS):
            columns = _pg_columns(src, MARTS, table)
            pub.execute(
                f'create table {nxt[MARTS]}."{table}" ('
                + ", ".join(f'"{name}" {type_}' for name, type_ in columns)
                + ")"
            )
            _pg_copy(
                src,
                dst,
                f'{MARTS}."{table}"',
                f'{nxt[MARTS]}."{table}"',
                [name for name, _ in columns],
            )
            pub.execute(f'analyze {nxt[MARTS]}."{table}"')  # plans for readers' first queries
        for statement in audit.ddl(nxt[audit.SCHEMA]):
            pub.execute(statement)
        for table in audit.AUDIT_TABLES:
            cols = [name for name, _ in _pg_columns(src, audit.SCHEMA, table)]
            _pg_copy(src, dst, f"{audit.SCHEMA}.{table}", f"{nxt[audit.SCHEMA]}.{table}", cols)
        pub.execute(
            f"create table {nxt[audit.SCHEMA]}.quarantine ("
            + ", ".join(f'"{n}" {t}' for n, t in _pg_columns(src, audit.SCHEMA, "quarantine"))
            + ")"
        )
        columns = audit.QUARANTINE_VIEW_COLUMNS
        rows = work.execute(
            f"select {', '.join(columns)} from {audit.SCHEMA}.quarantine"
        ).fetchall()
        entity_at, payload_at = columns.index("entity"), columns.index("payload")
        with dst.cursor().copy(
            f"copy {nxt[audit.SCHEMA]}.quarantine ({', '.join(columns)}) from stdin"
        ) as copy:
            for row in rows:
                row = list(row)
                row[payload_at] = published_payload(row[entity_at], row[payload_at])
                copy.write_row(row)
        audit.finish_run(pub, run, "published", finished_at=finished_at, schema=nxt[audit.SCHEMA])
        dst.commit()

        # The swap: readers see the old marts and audit, or the new ones, never a mix. Renames
        # take no lock a reader holds; the old schemas get a name of their own so that a
        # leftover a reader still held last time is never in the way. The BI role's grants
        # are given in the same transaction: the new marts is readable from its first moment.
        retired = uuid.uuid4().hex[:8]
        with dst.transaction():
            bi_access.grant_on_schema(dst, nxt[MARTS], bi_access.BI_READER_ROLE)
            for schema, next_schema in nxt.items():
                if _pg_schema_exists(dst, schema):
                    pub.execute(f"alter schema {schema} rename to {schema}_old_{retired}")
                pub.execute(f"alter schema {next_schema} rename to {schema}")
        _drop_old_schemas(dst)
    return make_url(settings.published_postgres_url).render_as_string(hide_password=True)


def _pg_columns(con, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod)
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """,
        [schema, table],
    ).fetchall()


def _pg_copy(src, dst, source: str, target: str, columns: list[str]) -> None:
    """Stream one table between the databases in PostgreSQL's binary format."""
    cols = ", ".join(f'"{c}"' for c in columns)
    with (
        src.cursor().copy(f"copy (select {cols} from {source}) to stdout (format binary)") as out,
        dst.cursor().copy(f"copy {target} ({cols}) from stdin (format binary)") as into,
    ):
        for chunk in out:
            into.write(chunk)


def _pg_schema_exists(con, schema: str) -> bool:
    return (
        con.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone()
        is not None
    )


def _drop_old_schemas(con) -> None:
    """Drop the schemas earlier swaps retired, each unless a reader still holds it."""
    retired = [
        r[0]
        for r in con.execute(
            "select nspname from pg_namespace where nspname ~ %s",
            [rf"^({'|'.join(PUBLISHED_SCHEMAS)})_old_[0-9a-f]+$"],
        ).fetchall()
    ]
    con.commit()
    for schema in retired:
        try:
            with con.transaction():
                con.execute(f"set local lock_timeout = '{DROP_LOCK_TIMEOUT}'")
                con.execute(f"drop schema {schema} cascade")
        except Exception as exc:  # a reader still holds the old tables: the next publish drops
            log.warning("left %s for the next publish to drop: %s", schema, exc)
