"""Spark: the local cluster (ops_warehouse.warehouse.spark_cluster), and the pipeline on it.

The cluster starts two workers on 127.0.0.1 only, runs queries through the Thrift server on
the workers' executors, starts idempotently, survives an executor killed mid-query, and stops
every process it started.

The pipeline on Spark, driven by Airflow as on the other engines (``ops-demo`` with
``OPS_WAREHOUSE=spark``: ingest → transform → publish → reports) on that cluster: its 14
published marts, read through the Thrift server, equal the DuckDB models built from the same
raw; BI readers see the newest publish; a blocked run and a failed publish leave the
published marts as they were.

One module and one cluster (the session's ``spark_cluster``; one module, so that under
``pytest -n 2 --dist loadfile`` one worker starts it); the stop test comes last, and starts the
cluster again only when tests of another module still ask for it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import socket
import threading
import time
import urllib.error
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

from ops_warehouse.settings import Settings
from ops_warehouse.warehouse import spark_cluster as sc
from ops_warehouse.warehouse.engines import engine, published_version
from ops_warehouse.warehouse.spark_cluster import (
    HOST,
    SparkCluster,
    SparkClusterError,
    executor_pids,
    master_state,
    query,
    start,
    status,
    stop,
)
from tests.helpers import run_demo

# The first test that asks for the demo on Spark pays for its setup: the cluster, then the
# Airflow demo (``run_demo``'s own limit, 1500 s) and a DuckDB build. On a slow host that is
# more than the suite's 900 s per test, so this module's limit covers both; a hang still ends.
pytestmark = pytest.mark.timeout(2100)


def _get(url: str, attempts: int = 3):
    """A JSON answer of a web UI's REST API. The driver's UI answers from the same JVM that runs
    the queries: on a slow host, beside the Airflow demo, one answer took more than 10 s
    (`TimeoutError`), so a slow answer is waited for and asked again, not taken as a failure."""
    for attempt in range(attempts):
        try:
            return sc._get_json(url, timeout_s=30)
        except (TimeoutError, urllib.error.URLError) as exc:
            timed_out = isinstance(getattr(exc, "reason", exc), TimeoutError)
            if not timed_out or attempt == attempts - 1:
                raise


def _app_id(cluster: SparkCluster) -> str:
    apps = (master_state(cluster) or {}).get("activeapps", [])
    assert len(apps) == 1, f"one application (the Thrift server) expected, not {apps}"
    return apps[0]["id"]


def _executors(cluster: SparkCluster, which: str = "allexecutors") -> list[dict]:
    """The Thrift server application's executors (``executors``: the active ones), the
    driver left out."""
    app = _app_id(cluster)
    listed = _get(f"{cluster.app_ui_url}/api/v1/applications/{app}/{which}")
    return [e for e in listed if e["id"] != "driver"]


def _cluster_pids(cluster: SparkCluster) -> list[int]:
    return [p.pid for p in sc._all_processes(cluster)]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- without a cluster: what start() is given and refuses ---------------------------------


def test_the_thrift_server_carries_the_settings_that_matter(tmp_path):
    cluster = SparkCluster(tmp_path, workers=3, worker_memory="1536m")
    commands = sc._commands(cluster)
    assert sorted(commands) == ["master", "thrift", "worker-1", "worker-2", "worker-3"]
    thrift = commands["thrift"]
    conf = dict(thrift[i + 1].split("=", 1) for i, a in enumerate(thrift) if a == "--conf")
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == HOST
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.warehouse.dir"] == str(cluster.folder / "warehouse")
    assert f"-Dderby.system.home={cluster.folder / 'metastore'}" in (
        conf["spark.driver.extraJavaOptions"].split()
    )
    assert int(conf["spark.task.maxFailures"]) >= 4
    # an executor asking for more than a worker offers would never launch
    assert conf["spark.executor.memory"] == "1536m" and conf["spark.cores.max"] == "3"
    assert f"hive.server2.thrift.port={cluster.thrift_port}" in thrift
    assert f"hive.server2.thrift.bind.host={HOST}" in thrift
    assert thrift[0].endswith("bin/spark-submit") and commands["master"][0].endswith(
        "bin/spark-class"
    )
    assert commands["worker-2"][-1] == f"spark://{HOST}:{cluster.master_port}"
    env = sc._environment(cluster)
    assert env["SPARK_LOCAL_IP"] == HOST
    assert env["SPARK_WORKER_DIR"].startswith(str(cluster.folder))
    assert env["SPARK_LOG_DIR"] == str(cluster.folder / "logs")
    assert Path(env["SPARK_HOME"], "bin", "spark-class").exists()


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPS_SPARK_HOME_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OPS_SPARK_MASTER_PORT", "7177")
    monkeypatch.setenv("OPS_SPARK_THRIFT_PORT", "10100")
    monkeypatch.setenv("OPS_SPARK_WORKERS", "3")
    monkeypatch.setenv("OPS_SPARK_WORKER_MEMORY", "512m")
    cluster = SparkCluster.from_env()
    assert (cluster.folder, cluster.master_port, cluster.thrift_port) == (
        tmp_path / "state",
        7177,
        10100,
    )
    assert (cluster.workers, cluster.executor_memory_mb) == (3, 512)
    monkeypatch.setenv("OPS_SPARK_WORKER_MEMORY", "lots")
    with pytest.raises(SparkClusterError, match="OPS_SPARK_WORKER_MEMORY"):
        SparkCluster.from_env()


def test_a_taken_port_is_named_before_anything_starts(tmp_path):

    with socket.socket() as held:
        held.bind((HOST, 0))
        held.listen()
        port = held.getsockname()[1]
        cluster = SparkCluster(
            tmp_path / "state", master_port=port, webui_port=port + 1, thrift_port=port + 9
        )
        with pytest.raises(SparkClusterError, match=rf"port {port} \(master"):
            start(cluster, say=lambda _: None)
    assert not (tmp_path / "state" / "pids").exists() or not any(
        (tmp_path / "state" / "pids").iterdir()
    )


# --- on the running cluster -----------------------------------------------------------------


def test_two_workers_are_registered_and_everything_listens_on_loopback(spark_cluster):
    state = master_state(spark_cluster)
    alive = [w for w in state["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == 2, state["workers"]
    assert {w["webuiaddress"] for w in alive} == {
        f"http://{HOST}:{spark_cluster.worker_webui_port(n)}" for n in (1, 2)
    }
    assert all(w["cores"] == 1 and w["memory"] == 1024 for w in alive)
    current = status(spark_cluster)
    assert current.running and current.alive_workers == 2
    assert [p.name for p in current.processes] == ["master", "worker-1", "worker-2", "thrift"]
    # every JVM of the cluster, executors included, listens on 127.0.0.1 only
    processes = sc._all_processes(spark_cluster)
    assert len(processes) == 6, "master, 2 workers, Thrift server, 2 executors"
    for process in processes:
        for conn in process.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN:
                assert conn.laddr.ip in (HOST, "::ffff:127.0.0.1"), (process.pid, conn.laddr)
    for name in spark_cluster.process_names:
        assert spark_cluster.log(name).stat().st_size > 0, f"{name} logs nothing"


def test_a_query_through_thrift_runs_on_the_workers(spark_cluster):
    query(spark_cluster, "drop table if exists numbers")
    query(
        spark_cluster,
        "create table numbers using parquet as select id, id % 7 as k from range(0, 100000, 1, 4)",
    )
    rows = query(spark_cluster, "select k, count(*), sum(id) from numbers group by k order by k")
    expected = [(k, len(ids), sum(ids)) for k in range(7) for ids in [range(k, 100000, 7)]]
    assert rows == expected
    assert query(spark_cluster, "select current_timezone()") == [("UTC",)]
    # the table is Parquet in the cluster's warehouse folder, registered in its metastore
    assert list((spark_cluster.warehouse_dir / "numbers").glob("*.parquet"))
    assert (spark_cluster.metastore_dir / "metastore_db").is_dir()
    # the tasks ran on the workers' executors, none in the driver
    executors = _executors(spark_cluster, "executors")
    assert len(executors) == 2
    assert all(e["hostPort"].startswith(f"{HOST}:") for e in executors)
    assert sum(e["totalTasks"] for e in executors) >= 4 + 4


def test_start_is_idempotent(spark_cluster):
    pids = _cluster_pids(spark_cluster)
    began = time.monotonic()
    lines: list[str] = []
    again = start(
        SparkCluster(spark_cluster.folder, master_port=1, webui_port=2, thrift_port=3),
        say=lines.append,
    )
    assert again == spark_cluster, "the running cluster's own settings, not the ones asked"
    assert time.monotonic() - began < 30
    assert sorted(_cluster_pids(spark_cluster)) == sorted(pids), "no process started or stopped"
    assert any("already running" in line for line in lines), lines


def test_worker_killed_is_retried(spark_cluster):
    """An executor JVM killed (SIGKILL) in the middle of a query: the query still returns
    the right answer (its lost tasks run again), the application records the executor as
    lost and the worker launches a new one."""
    rows, partitions = 2_400_000_000, 48
    sql = f"select count(*), sum(id) from range(0, {rows}, 1, {partitions})"
    [victim] = executor_pids(spark_cluster, 1)
    cmdline = psutil.Process(victim).cmdline()
    victim_id = cmdline[cmdline.index("--executor-id") + 1]
    app = _app_id(spark_cluster)
    before = {e["id"] for e in _executors(spark_cluster, "allexecutors")}
    outcome: dict = {}

    def run() -> None:
        began = time.monotonic()
        try:
            outcome["rows"] = query(spark_cluster, sql, timeout_s=None)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # kill once the query's tasks run on both executors, a few of them done
    deadline = time.monotonic() + 60
    while True:
        stages = _get(f"{spark_cluster.app_ui_url}/api/v1/applications/{app}/stages?status=active")
        if any(s["numTasks"] == partitions and s["numCompleteTasks"] >= 6 for s in stages):
            break
        assert time.monotonic() < deadline and thread.is_alive(), (outcome, stages)
        time.sleep(0.2)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    thread.join(timeout=240)
    assert not thread.is_alive(), "the query did not finish within 4 minutes of the kill"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["rows"] == [(rows, rows * (rows - 1) // 2)]
    assert time.monotonic() - killed_at > 1, "the kill came after the query had ended"

    executors = {e["id"]: e for e in _executors(spark_cluster, "allexecutors")}
    assert executors[victim_id]["isActive"] is False, executors[victim_id]
    assert executors[victim_id]["removeReason"], executors[victim_id]
    # the worker launched a replacement (a new JVM), which the application registered
    deadline = time.monotonic() + 90
    while not (set(executor_pids(spark_cluster, 1)) - {victim}) or (
        len(_executors(spark_cluster, "executors")) < 2
    ):
        assert time.monotonic() < deadline, "no new executor on worker 1"
        time.sleep(0.5)
    replacements = {e["id"] for e in _executors(spark_cluster, "executors")} - before
    assert replacements, "the application registered no new executor"
    assert f"Lost executor {victim_id}" in spark_cluster.log("thrift").read_text()
    print(f"query with a killed executor: {outcome['seconds']:.1f} s")


# --- the pipeline on the cluster ----------------------------------------------------------

SCALE = "0.03"
# the demo world's last day, the day its run is for
AS_OF = date(2026, 11, 22)
MARTS = 14


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
    run = run_demo(
        on_spark,
        SCALE,
        timeout=1500,
        OPS_WAREHOUSE="spark",
        OPS_SPARK_THRIFT_PORT=str(spark_cluster.thrift_port),
        OPS_SPARK_LAKE_DIR=str(root / "lake"),
        # a weekday's run (the demo's as-of date is a Sunday, a full build by default): dbt's
        # daily test selection on Spark; the whole test run is the same SQL, run by the
        # DuckDB and PostgreSQL tests
        OPS_FULL_REBUILD_DAYS="none",
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for dag_id in ("ingest_marketing", "ingest_sales", "ingest_support", "transform"):
        assert f"✓ {dag_id}" in run.stdout
    # the transform's log (the demo's output, or Airflow's task log files)
    texts = [
        run.stdout,
        run.stderr,
        *(f.read_text(errors="replace") for f in on_spark.rglob("*.log")),
    ]
    build_lines = [
        line for text in texts for line in text.splitlines() if "dbt build as of" in line
    ]
    assert build_lines and all("incremental day" in line for line in build_lines), build_lines
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


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_the_reports_were_built_from_spark(demo_homes):
    _, on_spark, stdout = demo_homes
    assert "✓ weekly_report" in stdout and "✓ daily_digest" in stdout
    with engine(on_spark).published() as s:
        runs = s.fetch("select dag_id, status from audit.pipeline_runs where status = 'published'")
    assert ("transform", "published") in runs


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_an_incremental_day_on_spark_checks_the_rows_built_since_the_last_gate(demo_homes):
    """The staging checks of an incremental day pushed down to Spark: a row a later build
    wrote is checked, one built before the demo's gate passed is not (a full build finds
    both), and the key check reads every row sharing a key with a new row."""
    from ops_warehouse.pipeline.quality.gx_runner import newest_loads, run_suites

    _, on_spark, _ = demo_homes
    table = "staging.stg_sales__orders"
    mark = newest_loads(on_spark, ["staging"])[table]  # what the demo's gate recorded
    later = "cast('2100-01-01 00:00:00' as timestamp)"
    with engine(on_spark).spark() as con:
        columns = con.columns("staging", "stg_sales__orders")

        def copy(where: str, **values: str) -> str:
            picked = ", ".join(values.get(c, c) for c in columns)
            return f"insert into {table} select {picked} from {table} where {where}"

        first, last = (f"order_id = (select {f}(order_id) from {table})" for f in ("min", "max"))
        con.execute(f"create table default.orders_saved as select * from {table}")
        # a null key in a row built before the mark; a null key and a repeated key in rows a
        # later build wrote
        con.execute(copy(first, order_id="cast(null as string)"))
        con.execute(copy(last, order_id="cast(null as string)", _loaded_at=later))
        con.execute(copy(last, _loaded_at=later))
    try:
        only = ["orders.staging"]
        day = {
            (r.check, r.column): r
            for r in run_suites(on_spark, "staging", AS_OF, "spark_day", only, full=False)
            if not r.success
        }
        full = {
            (r.check, r.column): r
            for r in run_suites(on_spark, "staging", AS_OF, "spark_full", only, full=True)
            if not r.success
        }
    finally:
        with engine(on_spark).spark() as con:
            con.execute(f"insert overwrite table {table} select * from default.orders_saved")
            con.execute("drop table default.orders_saved")
    null_key = ("expect_column_values_to_not_be_null", "order_id")
    unique = ("expect_column_values_to_be_unique", "order_id")
    assert set(day) == {null_key, unique}, [r.describe() for r in day.values()]
    assert day[null_key].unexpected_count == 1
    assert "rows loaded after" in day[null_key].observed_value
    assert mark.isoformat()[:19] in day[null_key].observed_value
    assert day[unique].unexpected_count == 2
    assert set(full) == {null_key, unique} and full[null_key].unexpected_count == 2


# --- last: stopping -----------------------------------------------------------------------


def test_stop_leaves_no_process_behind(spark_cluster, request):
    pids = _cluster_pids(spark_cluster)
    assert len(pids) == 6
    stopped = stop(spark_cluster, say=lambda _: None)
    # all of them (and any short-lived child a worker started meanwhile)
    assert set(pids) <= set(stopped)
    assert not [pid for pid in pids if _alive(pid)], "processes left after stop"
    assert not list((spark_cluster.folder / "pids").iterdir()), "pid files left"
    assert status(spark_cluster).stopped
    assert stop(spark_cluster, say=lambda _: None) == [], "a second stop finds nothing"
    # tests of other modules still to come find it running again, with its tables
    later = request.session.items[request.session.items.index(request.node) + 1 :]
    if any("spark_cluster" in item.fixturenames for item in later):
        start(spark_cluster, say=lambda _: None)
        assert query(spark_cluster, "select count(*) from numbers") == [(100000,)]
