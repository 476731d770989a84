"""The optional Parquet export of the published marts (DuckDB): one file per mart, equal to
the published table, replaced atomically by each publish."""

from __future__ import annotations

import dataclasses
import os

import duckdb
import pytest

from ops_warehouse.pipeline import audit
from ops_warehouse.warehouse import publish
from ops_warehouse.warehouse.parquet_export import ParquetExportError
from tests.helpers import MART_TABLES
from tests.quality.wap import fixed_data_docs, run, working_copy  # noqa: F401 (fixture)


@pytest.fixture
def settings(duckdb_marts, tmp_path):
    return working_copy(duckdb_marts, tmp_path / "home", parquet_export_dir=tmp_path / "bi")


def published(settings, run_id: str) -> None:
    this = run(run_id)
    audit.record_run_start(settings, this)
    publish.publish(settings, this)


def differences(settings, table: str) -> int:
    """Rows in the Parquet file and not in the published table, or the other way round."""
    path = settings.parquet_export_dir / f"{table}.parquet"
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(
            f"select count(*) from ((select * from read_parquet('{path}') except all "
            f"select * from marts.{table}) union all (select * from marts.{table} except all "
            f"select * from read_parquet('{path}')))"
        ).fetchone()[0]


def test_each_publish_writes_every_mart_as_parquet(settings):
    published(settings, "pq__1")
    files = sorted(p.name for p in settings.parquet_export_dir.iterdir())
    assert files == sorted(f"{t}.parquet" for t in MART_TABLES), "one file per mart, no temp"
    for table in MART_TABLES:
        assert differences(settings, table) == 0, f"{table}.parquet differs from the mart"
    with duckdb.connect() as con:
        types = dict(
            con.execute(
                "select column_name, column_type from (describe select * from read_parquet(?))",
                [str(settings.parquet_export_dir / "fct_orders.parquet")],
            ).fetchall()
        )
    assert types["net_revenue"].startswith("DECIMAL"), "money stays exact in the export"

    # the next publish replaces the files: a reader with the old one open keeps its bytes
    target = settings.parquet_export_dir / "kpi_daily.parquet"
    held = target.open("rb")
    held_bytes, inode = held.read(), os.fstat(held.fileno()).st_ino
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("update marts.kpi_daily set net_revenue = net_revenue + 1")
    published(settings, "pq__2")
    assert os.stat(target).st_ino != inode, "written in place instead of replaced"
    held.seek(0)
    assert held.read() == held_bytes
    held.close()
    assert differences(settings, "kpi_daily") == 0
    assert not [p for p in settings.parquet_export_dir.iterdir() if p.suffix != ".parquet"]


def test_an_unusable_export_folder_is_named(settings, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    bad = dataclasses.replace(settings, parquet_export_dir=blocker)
    with pytest.raises(ParquetExportError, match="OPS_PARQUET_EXPORT_DIR=.*not_a_folder"):
        published(bad, "pq__bad")


def test_no_export_without_the_setting(settings, tmp_path):
    off = dataclasses.replace(settings, parquet_export_dir=None)
    published(off, "pq__off")
    assert not settings.parquet_export_dir.exists()
