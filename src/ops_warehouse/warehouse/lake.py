"""The lake: the landing warehouse's raw tables as Parquet, where every Spark node reads them.

On Spark (``OPS_WAREHOUSE=spark``, ``warehouse.engines.Spark``) the loaders write raw into the
landing DuckDB file as on DuckDB; before each build, :func:`sync_raw` writes the raw tables
that changed to ``OPS_SPARK_LAKE_DIR`` and points Spark's tables of the same names at them.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops_warehouse.files import sql_literal
from ops_warehouse.settings import Settings

if TYPE_CHECKING:
    from ops_warehouse.warehouse.engines import Connection

log = logging.getLogger(__name__)

# Landing schemas Spark reads: the loaders' raw tables (dbt's sources).
RAW_SCHEMA_PREFIX = "raw_"
# DuckDB types Parquet or Spark cannot carry as they are, and what they are written as.
_PORTABLE_TYPES = (
    (re.compile(r"^(UUID|JSON|TIME|TIME WITH TIME ZONE|INTERVAL|BIT)$"), "varchar"),
    (re.compile(r"^(HUGEINT|UHUGEINT)$"), "decimal(38, 0)"),
    (re.compile(r"^UBIGINT$"), "decimal(20, 0)"),
    (re.compile(r"^UINTEGER$"), "bigint"),
    (re.compile(r"^(USMALLINT)$"), "integer"),
    (re.compile(r"^(UTINYINT)$"), "smallint"),
)


def lake_dir(settings: Settings) -> Path:
    return settings.spark_lake_dir


def _portable_select(con, schema: str, table: str) -> str:
    """A select of a landing table with every column in a type Parquet and Spark read."""
    columns = []
    for name, type_ in con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? "
        "and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall():
        quoted = '"' + name.replace('"', '""') + '"'
        cast = next((to for pattern, to in _PORTABLE_TYPES if pattern.match(type_.upper())), None)
        columns.append(f"cast({quoted} as {cast}) as {quoted}" if cast else quoted)
    return f'select {", ".join(columns)} from "{schema}"."{table}"'


def _state_of(con, schema: str, table: str) -> dict[str, Any]:
    """What identifies a landing table's content cheaply: its columns, rows and newest load."""
    columns = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? "
        "and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    names = {c[0] for c in columns}
    newest = "max(_load_id)" if "_load_id" in names else "null"
    count, load = con.execute(f'select count(*), {newest} from "{schema}"."{table}"').fetchone()
    return {"columns": [list(c) for c in columns], "rows": count, "newest_load": str(load)}


def sync_raw(settings: Settings, landing: Connection, spark: Connection) -> dict[str, int]:
    """Write every landing raw table that changed since the last sync to the lake as Parquet
    and point its Spark table at the new files; returns the rows written per table.

    A table is rewritten whole when its columns, row count or newest load differ from what
    the lake holds (``_synced.json`` beside its files): loads append, replace (landing
    sheets) or delete (a rebuild), and the whole table costs seconds where the build that
    reads it costs minutes. The new files go to a folder of their own; the Spark table is
    moved to it (``alter table … set location``, one metastore update) and the old folder
    deleted afterwards."""
    started = time.monotonic()
    root = lake_dir(settings) / "raw"
    root.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    unchanged = 0
    tables = landing.execute(
        "select table_schema, table_name from information_schema.tables where "
        "table_schema like ? and table_schema not like ? and table_type = 'BASE TABLE' "
        "order by 1, 2",
        [f"{RAW_SCHEMA_PREFIX}%", "%\\_staging"],
    ).fetchall()
    # dlt's own tables (_dlt_loads, …) and the quarantine stay in landing
    tables = [(s, t) for s, t in tables if not t.startswith("_") and not s.endswith("_staging")]
    in_spark = {schema: set(spark.tables(schema)) for schema in {s for s, _ in tables}}
    for schema, table in tables:
        folder = root / schema / table
        marker = folder / "_synced.json"
        state = _state_of(landing, schema, table)
        exists = table in in_spark[schema]
        if exists and marker.exists() and json.loads(marker.read_text()) == state:
            unchanged += 1
            continue
        target = folder / f"v{time.time_ns()}"
        target.mkdir(parents=True)
        landing.execute(
            f"copy ({_portable_select(landing, schema, table)}) to "
            f"'{sql_literal(target / 'part-0.parquet')}' (format parquet)"
        )
        spark.execute(f"create database if not exists {schema}")
        if exists:
            spark.execute(f"alter table {schema}.{table} set location '{sql_literal(target)}'")
            spark.execute(f"refresh table {schema}.{table}")
        else:
            spark.execute(
                f"create table {schema}.{table} using parquet location '{sql_literal(target)}'"
            )
        for old in folder.iterdir():
            if old.is_dir() and old != target:
                shutil.rmtree(old, ignore_errors=True)
        marker.write_text(json.dumps(state))
        written[f"{schema}.{table}"] = state["rows"]
    log.info(
        "lake: %d raw tables written (%d rows), %d unchanged, in %.1f s",
        len(written),
        sum(written.values()),
        unchanged,
        time.monotonic() - started,
    )
    return written
