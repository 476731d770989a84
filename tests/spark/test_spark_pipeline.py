"""The pipeline on Spark, driven by Airflow as on the other engines (``ops-demo`` with
``OPS_WAREHOUSE=spark``: ingest → transform → publish → reports) on a 2-worker standalone
cluster: its 14 published marts, read through the Thrift server, equal the DuckDB models
built from the same raw; a blocked run and a failed publish leave the published marts as
they were."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.engines import engine, published_version

pytestmark = pytest.mark.e2e

SCALE = "0.03"
# the demo world's last day, the day its run is for
AS_OF = date(2026, 11, 22)
MARTS = 14


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo(home: Path, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    env.update(
        OPS_HOME=str(home),
        OPS_DEMO_SCALE=SCALE,
        OPS_DEMO_PORT=str(_free_port()),
        COLUMNS="160",
        **env_overrides,
    )
    return subprocess.run(
        [str(Path(sys.executable).with_name("ops-demo"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )


def _settings(home: Path, **overrides) -> Settings:
    return dataclasses.replace(
        Settings.from_env(),
        home=home,
        warehouse_path=home / "warehouse" / "working.duckdb",
        published_path=home / "warehouse" / "published.duckdb",
        **overrides,
    )


def _value(v):
    """One value in a form both engines agree on: money exact, floats to 1e-6, instants UTC."""
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    if isinstance(v, Decimal):
        return v.normalize()
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)
    return v


def _rows(con, table: str) -> tuple[list[str], list[tuple]]:
    """A mart's columns and sorted rows; load bookkeeping aside (``_loaded_at``: when each run
    loaded the row, which differs between the two runs by design)."""
    cursor = con.execute(f"select * from marts.{table}")
    names = [d[0].split(".")[-1].lower() for d in cursor.description]
    keep = [i for i, name in enumerate(names) if not name.startswith("_")]
    rows = [tuple(_value(row[i]) for i in keep) for row in cursor.fetchall()]
    rows.sort(key=lambda r: tuple((v is None, str(v)) for v in r))
    return [names[i] for i in keep], rows


@pytest.fixture(scope="module")
def demo_homes(tmp_path_factory, spark_cluster):
    """The demo world run through Airflow on Spark; then the DuckDB models built by dbt from a
    copy of its landing file: the same raw, the other engine."""
    from ops_warehouse.pipeline.transform import dbt_invoke

    root = tmp_path_factory.mktemp("spark_e2e")
    on_spark, duck = root / "spark", root / "duckdb"
    run = _demo(
        on_spark,
        OPS_WAREHOUSE="spark",
        OPS_SPARK_THRIFT_PORT=str(spark_cluster.thrift_port),
        OPS_SPARK_LAKE_DIR=str(root / "lake"),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for dag_id in ("ingest_marketing", "ingest_sales", "ingest_support", "transform"):
        assert f"✓ {dag_id}" in run.stdout
    spark_settings = _settings(
        on_spark,
        warehouse="spark",
        dbt_target="spark",
        spark_thrift_port=spark_cluster.thrift_port,
        spark_lake_dir=root / "lake",
    )
    (duck / "warehouse").mkdir(parents=True)
    shutil.copy(spark_settings.warehouse_path, duck / "warehouse" / "working.duckdb")
    duck_settings = _settings(duck, warehouse="duckdb", dbt_target="duckdb")
    dbt_invoke(
        ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"],
        settings=duck_settings,
        as_of=AS_OF,
    )
    return duck_settings, spark_settings, run.stdout


def test_the_marts_on_spark_equal_duckdb(demo_homes):
    duck, on_spark, _ = demo_homes
    compared = 0
    with engine(duck).read_only() as d, engine(on_spark).published() as s:
        tables = d.tables("marts")
        assert len(tables) == MARTS
        assert s.tables("marts") == tables
        for table in tables:
            d_names, d_rows = _rows(d, table)
            s_names, s_rows = _rows(s, table)
            assert s_names == d_names, table
            assert len(s_rows) == len(d_rows), table
            assert s_rows == d_rows, table
            compared += len(d_rows)
    assert compared > 10_000


def test_the_reports_were_built_from_spark(demo_homes):
    _, on_spark, stdout = demo_homes
    assert "✓ weekly_report" in stdout and "✓ daily_digest" in stdout
    with engine(on_spark).published() as s:
        runs = s.fetch("select dag_id, status from audit.pipeline_runs where status = 'published'")
    assert ("transform", "published") in runs


def test_bi_tools_read_the_published_views_through_the_thrift_server(demo_homes):
    """What a BI tool configured with ``published_url`` (SQLAlchemy, ``hive://``) or
    ``connect_published`` (DB-API) reads: the newest publish, by the marts' own names."""
    import sqlalchemy as sa

    from ops_warehouse.warehouse.readers import connect_published, published_engine

    _, on_spark, _ = demo_homes
    with engine(on_spark).published() as pinned:
        expected = pinned.fetch("select count(*), sum(net_revenue) from marts.kpi_daily")[0]
        orders = pinned.fetch("select count(*) from marts.fct_orders")[0][0]
    bi = published_engine(on_spark)
    try:
        with bi.connect() as con:
            got = con.execute(sa.text("select count(*), sum(net_revenue) from kpi_daily")).one()
    finally:
        bi.dispose()
    assert tuple(got) == tuple(expected) and expected[0] > 0
    con = connect_published(on_spark)
    try:
        cursor = con.cursor()
        cursor.execute("select count(*) from fct_orders")
        assert cursor.fetchall() == [(orders,)]
    finally:
        con.close()


def test_a_failed_publish_leaves_the_published_marts_as_they_were(demo_homes, monkeypatch):
    from ops_warehouse.pipeline.audit import RunInfo
    from ops_warehouse.warehouse import publish as publish_module

    _, on_spark, _ = demo_homes
    with engine(on_spark).spark() as con:
        before = published_version(con)
        before_counts = {
            t: con.fetch(f"select count(*) from published.{t}")[0][0]
            for t in con.tables("published")
            if t != "_version"
        }
        databases = {r[0] for r in con.fetch("show databases")}

    def broken(*args, **kwargs):
        raise OSError("disk full (planted)")

    monkeypatch.setattr(publish_module, "published_audit_tables", broken)
    run = RunInfo("transform", "planted_failure")
    with pytest.raises(OSError, match="planted"):
        publish_module.publish_marts(on_spark, run)
    with engine(on_spark).spark() as con:
        assert published_version(con) == before
        assert {r[0] for r in con.fetch("show databases")} == databases  # nothing left behind
        after_counts = {
            t: con.fetch(f"select count(*) from published.{t}")[0][0]
            for t in con.tables("published")
            if t != "_version"
        }
    assert after_counts == before_counts


def test_a_blocked_marts_check_on_spark_leaves_the_published_marts(demo_homes):
    """A duplicate order in Spark's working fct_orders: the marts gate (GX pushed down to the
    Thrift server) blocks it, and what readers see is the last publish."""
    from ops_warehouse.pipeline.quality.gx_runner import blocking_failures, run_suites

    _, on_spark, _ = demo_homes
    with engine(on_spark).spark() as con:
        before = published_version(con)
        published_orders = con.fetch("select count(*) from published.fct_orders")[0][0]
        con.execute("insert into marts.fct_orders select * from marts.fct_orders limit 1")
    try:
        results = run_suites(on_spark, "marts", AS_OF, "planted_duplicate")
        blocking = blocking_failures(results)
        assert any(r.suite.startswith("fct_orders") and "unique" in r.check for r in blocking), [
            (r.suite, r.check) for r in blocking
        ]
        with engine(on_spark).spark() as con:
            assert published_version(con) == before
            assert con.fetch("select count(*) from published.fct_orders")[0][0] == published_orders
    finally:
        with engine(on_spark).spark() as con:  # the working mart as dbt built it
            con.execute(
                f"insert overwrite table marts.fct_orders select * from {before}.fct_orders"
            )
