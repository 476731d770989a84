"""Parquet copies of the published marts, for BI tools with no DuckDB driver.

When ``OPS_PARQUET_EXPORT_DIR`` is set, each DuckDB publish writes every ``marts`` table as
``<dir>/<table>.parquet``, read from the published file. Each file is written under a
temporary name in the same folder, flushed to disk, then ``os.replace``-d onto its final
name: a tool reading ``fct_orders.parquet`` sees the previous file or the new one, never a
torn one. (The set of files is not replaced as one: during a publish some tables may be
new and others still old, for a moment.)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.files import fsync, sql_literal
from ops_warehouse.pipeline.transform import MARTS


class ParquetExportError(OpsWarehouseError):
    """The Parquet export could not be written (the published DuckDB file is already new)."""


def export_marts(published_path: Path, export_dir: Path) -> list[Path]:
    """Write every ``marts`` table of the published DuckDB file to ``export_dir``."""
    import duckdb

    try:
        export_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParquetExportError(
            f"OPS_PARQUET_EXPORT_DIR={export_dir} cannot be used as a folder ({exc}); "
            "point it at a writable folder or unset it"
        ) from exc
    if not os.access(export_dir, os.W_OK):
        raise ParquetExportError(
            f"OPS_PARQUET_EXPORT_DIR={export_dir} is not writable by this process; "
            "fix its permissions or point it at another folder"
        )
    written = []
    with duckdb.connect(str(published_path), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ? "
                "order by table_name",
                [MARTS],
            ).fetchall()
        ]
        for table in tables:
            final = export_dir / f"{table}.parquet"
            staged = export_dir / f".{table}.parquet.{uuid.uuid4().hex}.tmp"
            try:
                con.execute(
                    f'copy (select * from {MARTS}."{table}") to '
                    f"'{sql_literal(staged)}' (format parquet)"
                )
                fsync(staged)
                os.replace(staged, final)
            except (OSError, duckdb.Error) as exc:
                raise ParquetExportError(
                    f"writing {final} failed ({exc}); the published DuckDB file is up to "
                    "date, the Parquet export is not (check OPS_PARQUET_EXPORT_DIR's free "
                    "space and permissions, then publish again)"
                ) from exc
            finally:
                staged.unlink(missing_ok=True)
            written.append(final)
    fsync(export_dir)
    return written
