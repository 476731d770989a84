"""The local Spark cluster (ops_warehouse.warehouse.spark_cluster): it starts two workers on
127.0.0.1 only, runs queries through the Thrift server on the workers' executors, starts
idempotently, survives an executor killed mid-query, and stops every process it started.

One cluster for the module (the session's ``spark_cluster``); the stop test comes last, and
starts the cluster again only when tests of another module still ask for it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from ops_warehouse.warehouse import spark_cluster as sc
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


def _get(url: str):
    return sc._get_json(url, timeout_s=10)


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
    import socket

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
