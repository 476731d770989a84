"""A local Spark standalone cluster on this machine: a master, workers and the Thrift server.

What the tests, the benchmark and developers run Spark SQL on, started from pyspark's own
scripts (``bin/spark-class``, ``bin/spark-submit`` under the pyspark package, which bundles
Spark, the Hive metastore, Derby and the Thrift server; installed in an environment of its
own, see :func:`spark_home`):

- a master (``spark://127.0.0.1:<master port>``, web UI on ``<web UI port>``);
- N workers of one core each (web UIs on ``<web UI port> + 1 … + N``);
- the Spark Thrift server (HiveThriftServer2, a Spark application on that master, UI on
  ``<web UI port> + N + 1``) answering HiveServer2 clients (PyHive, dbt-spark, beeline) on
  ``127.0.0.1:<Thrift port>``, with an embedded Derby Hive metastore and a Parquet warehouse.

Everything lives under one state folder: ``cluster.json`` (the ports and sizes it was
started with), ``pids/<name>.pid``, ``logs/<name>.log``, ``metastore/`` (Derby),
``warehouse/`` (the tables), ``work/`` (the workers' and executors' folders) and ``local/``
(shuffle and spill files). Every process it starts carries ``-Dops.spark.home=<folder>`` on
its command line, so that ``stop`` ends exactly this cluster's processes, executors
included, and never another cluster's.

Everything binds to 127.0.0.1: ``SPARK_LOCAL_IP`` for the master's, the workers' and the executors'
sockets and web UIs, ``spark.driver.host``/``bindAddress`` for the Thrift server's driver
(else it advertises the machine's first non-loopback address to the executors).

Settings, read here from the environment: ``OPS_SPARK_HOME_DIR`` (the state folder,
default ``<OPS_HOME>/spark``), ``OPS_SPARK_MASTER_PORT`` (7077), ``OPS_SPARK_WEBUI_PORT``
(8090), ``OPS_SPARK_THRIFT_PORT`` (10000), ``OPS_SPARK_WORKERS`` (2) and
``OPS_SPARK_WORKER_MEMORY`` (2g, each worker's and so each executor's memory).

    python -m ops_warehouse.warehouse.spark_cluster up|down|status
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.processes import port_holder
from ops_warehouse.settings import PROJECT_ROOT, get_settings

HOST = "127.0.0.1"
# how long stop() waits after SIGTERM before SIGKILL
# Spark's own environment: pyspark is not installed next to the product (see the file)
SPARK_REQUIREMENTS = PROJECT_ROOT / "deploy" / "spark" / "requirements.txt"
SPARK_VENV = PROJECT_ROOT / "deploy" / "spark" / ".venv"
STOP_GRACE_S = 20.0
START_TIMEOUT_S = 180.0
# the query that proves the cluster answers: two tasks, so executors must be running
READY_QUERY = "select count(*) from range(0, 2, 1, 2)"
THRIFT_USER = "ops"
_MEMORY = re.compile(r"^(\d+)([mg])$", re.IGNORECASE)


class SparkClusterError(OpsWarehouseError):
    """The local Spark cluster could not be started, reached or stopped; the message says
    which process and which log file to read."""


def spark_home() -> Path:
    """Spark's folder (bin/, jars/): ``SPARK_HOME`` when it is set (a Spark installation, the
    compose image's), else pyspark's package folder in Spark's own environment
    (``deploy/spark/.venv``, installed here from the hashed ``deploy/spark/requirements.txt``
    the first time, and again whenever that file changes)."""
    given = os.environ.get("SPARK_HOME")
    if given:
        if not (Path(given) / "bin" / "spark-class").exists():
            raise SparkClusterError(f"SPARK_HOME={given} has no bin/spark-class")
        return Path(given)
    python = SPARK_VENV / "bin" / "python"
    stamp = SPARK_VENV / "requirements.sha256"
    wanted = hashlib.sha256(SPARK_REQUIREMENTS.read_bytes()).hexdigest()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        uv = [shutil.which("uv")] if shutil.which("uv") else [sys.executable, "-m", "uv"]
        print(f"installing Spark ({SPARK_REQUIREMENTS.name}) into {SPARK_VENV}", flush=True)
        for command in (
            [
                *uv,
                "venv",
                "--quiet",
                "--allow-existing",
                "--python",
                sys.executable,
                str(SPARK_VENV),
            ],
            [*uv, "pip", "sync", "--quiet", "--python", str(python), str(SPARK_REQUIREMENTS)],
        ):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SparkClusterError(
                    f"installing Spark failed ({' '.join(command[-3:])}): "
                    f"{(done.stderr or done.stdout).strip()[-1000:]}"
                )
        stamp.write_text(wanted)
    found = list((SPARK_VENV / "lib").glob("python3*/site-packages/pyspark/bin/spark-class"))
    if not found:
        raise SparkClusterError(f"{SPARK_VENV} has no pyspark: delete it and start again")
    return found[0].parent.parent


def free_port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports on 127.0.0.1, below Linux's ephemeral
    range (32768+) so that no outgoing connection takes one between this check and the
    cluster's bind: for a cluster beside others (tests, the benchmark)."""
    import random

    rng = random.Random(os.getpid())
    for _ in range(200):
        base = rng.randrange(20000, 32000 - size)
        if all(port_holder(HOST, port) is None for port in range(base, base + size)):
            return base
    raise SparkClusterError(f"no {size} consecutive free ports found between 20000 and 32000")


def memory_mb(value: str, setting: str = "OPS_SPARK_WORKER_MEMORY") -> int:
    """A Spark memory size (``2g``, ``1536m``) in MiB."""
    match = _MEMORY.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise SparkClusterError(f"{setting} must be a size such as 2g or 1536m, not {value!r}")
    amount, unit = int(match.group(1)), match.group(2).lower()
    return amount * 1024 if unit == "g" else amount


@dataclass(frozen=True)
class SparkCluster:
    """One local cluster: where its state lives and the ports and sizes it runs with."""

    folder: Path
    master_port: int = 7077
    # the master's web UI; worker i's is webui_port + i, the Thrift server's webui_port + N + 1
    webui_port: int = 8090
    thrift_port: int = 10000
    workers: int = 2
    worker_memory: str = "2g"

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder).resolve())
        if re.search(r"\s", str(self.folder)):
            # the folder is passed inside Java option strings that Spark splits on spaces
            raise SparkClusterError(
                f"the Spark state folder must not contain spaces: {self.folder}"
            )
        if self.workers < 1:
            raise SparkClusterError(f"OPS_SPARK_WORKERS must be at least 1, not {self.workers}")
        memory_mb(self.worker_memory)

    @classmethod
    def from_env(cls) -> SparkCluster:
        def port(name: str, default: int) -> int:
            value = os.environ.get(name) or str(default)
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise SparkClusterError(f"{name} must be a port number, not {value!r}")
            return int(value)

        workers = os.environ.get("OPS_SPARK_WORKERS") or "2"
        if not workers.isdigit():
            raise SparkClusterError(f"OPS_SPARK_WORKERS must be a whole number, not {workers!r}")
        folder = os.environ.get("OPS_SPARK_HOME_DIR") or str(get_settings().home / "spark")
        return cls(
            folder=Path(folder),
            master_port=port("OPS_SPARK_MASTER_PORT", 7077),
            webui_port=port("OPS_SPARK_WEBUI_PORT", 8090),
            thrift_port=port("OPS_SPARK_THRIFT_PORT", 10000),
            workers=int(workers),
            worker_memory=os.environ.get("OPS_SPARK_WORKER_MEMORY") or "2g",
        )

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def master_webui_url(self) -> str:
        return f"http://{HOST}:{self.webui_port}"

    def worker_webui_port(self, number: int) -> int:
        """Worker ``number``'s web UI port (workers are numbered from 1)."""
        return self.webui_port + number

    @property
    def app_ui_port(self) -> int:
        """The Thrift server's application UI and REST API (``/api/v1/applications``)."""
        return self.webui_port + self.workers + 1

    @property
    def app_ui_url(self) -> str:
        return f"http://{HOST}:{self.app_ui_port}"

    @property
    def ports(self) -> dict[str, int]:
        """Every fixed port the cluster listens on, by what listens there."""
        named = {"master": self.master_port, "master web UI": self.webui_port}
        for number in range(1, self.workers + 1):
            named[f"worker {number} web UI"] = self.worker_webui_port(number)
        named["thrift server"] = self.thrift_port
        named["thrift server UI"] = self.app_ui_port
        return named

    @property
    def executor_memory_mb(self) -> int:
        # one executor per worker takes the worker's whole memory (more would never launch)
        return memory_mb(self.worker_memory)

    @property
    def process_names(self) -> list[str]:
        return ["master", *(f"worker-{n}" for n in range(1, self.workers + 1)), "thrift"]

    @property
    def marker(self) -> str:
        """The argument every process of this cluster carries, executors included."""
        return f"-Dops.spark.home={self.folder}"

    def log(self, name: str) -> Path:
        return self.folder / "logs" / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.folder / "pids" / f"{name}.pid"

    @property
    def state_file(self) -> Path:
        return self.folder / "cluster.json"

    @property
    def warehouse_dir(self) -> Path:
        return self.folder / "warehouse"

    @property
    def metastore_dir(self) -> Path:
        return self.folder / "metastore"


@dataclass
class ProcessStatus:
    name: str
    pid: int | None
    running: bool
    rss_mb: float = 0.0
    # executors a worker runs (their pids), for a worker only
    executors: list[int] = field(default_factory=list)


@dataclass
class ClusterStatus:
    cluster: SparkCluster
    processes: list[ProcessStatus]
    # what the master reports: ALIVE workers and running applications' ids
    alive_workers: int = 0
    applications: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return all(p.running for p in self.processes)

    @property
    def stopped(self) -> bool:
        return not any(p.running for p in self.processes)


def _recorded(folder: Path) -> SparkCluster | None:
    state = Path(folder).resolve() / "cluster.json"
    if not state.exists():
        return None
    data = json.loads(state.read_text())
    return SparkCluster(**{**data, "folder": Path(data["folder"])})


def _ours(cluster: SparkCluster, pid: int) -> psutil.Process | None:
    """The process ``pid`` if it runs and belongs to this cluster (a pid file can outlive
    its process and the number be reused)."""
    started = _started.get(pid)
    if started is not None and started.poll() is not None:
        return None
    try:
        process = psutil.Process(pid)
        if started is not None:
            # started here: maybe still the spark-class script, before it execs the JVM
            return process
        if process.status() == psutil.STATUS_ZOMBIE:
            _reap(process)
            return None
        return process if cluster.marker in process.cmdline() else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _reap(process: psutil.Process) -> None:
    try:
        process.wait(timeout=0)  # our own child: collect its exit status
    except (psutil.TimeoutExpired, psutil.NoSuchProcess, ChildProcessError):
        pass


def _pid(cluster: SparkCluster, name: str) -> int | None:
    try:
        return int(cluster.pid_file(name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _all_processes(cluster: SparkCluster) -> list[psutil.Process]:
    """Every live process of this cluster: the recorded ones, their descendants (the
    executors a worker spawned) and any process carrying the cluster's marker (an executor
    whose worker was killed)."""
    found: dict[int, psutil.Process] = {}
    for name in cluster.process_names:
        pid = _pid(cluster, name)
        process = _ours(cluster, pid) if pid else None
        if process is None:
            continue
        found[process.pid] = process
        try:
            found.update((c.pid, c) for c in process.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    for process in psutil.process_iter(["cmdline"]):
        try:
            if cluster.marker in (process.info["cmdline"] or []):
                found.setdefault(process.pid, process)
        except psutil.Error:
            pass
    return [p for p in found.values() if _running(p)]


def _running(process: psutil.Process) -> bool:
    # a zombie (an exited child its parent has not collected yet) runs no more
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def executor_pids(cluster: SparkCluster, worker: int) -> list[int]:
    """The executor JVMs (``CoarseGrainedExecutorBackend``) worker ``worker`` runs now."""
    pid = _pid(cluster, f"worker-{worker}")
    process = _ours(cluster, pid) if pid else None
    if process is None:
        return []
    pids = []
    for child in process.children(recursive=True):
        try:
            if "org.apache.spark.executor.CoarseGrainedExecutorBackend" in child.cmdline():
                pids.append(child.pid)
        except psutil.Error:
            pass
    return pids


def _get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def master_state(cluster: SparkCluster) -> dict[str, Any] | None:
    """The master's own summary (``/json`` of its web UI); None while it does not answer."""
    try:
        return _get_json(f"{cluster.master_webui_url}/json")
    except (OSError, ValueError):
        return None


def _alive_worker_ports(state: dict[str, Any]) -> set[int]:
    return {
        int(w["webuiaddress"].rsplit(":", 1)[1])
        for w in state.get("workers", [])
        if w.get("state") == "ALIVE"
    }


def status(cluster: SparkCluster | None = None) -> ClusterStatus:
    """Which of the cluster's processes run, their memory, and what the master reports."""
    cluster = cluster or SparkCluster.from_env()
    cluster = _recorded(cluster.folder) or cluster
    processes = []
    for name in cluster.process_names:
        pid = _pid(cluster, name)
        process = _ours(cluster, pid) if pid else None
        rss = 0.0
        if process is not None:
            try:
                rss = process.memory_info().rss / 2**20
            except psutil.Error:
                process = None
        executors = []
        if name.startswith("worker-") and process is not None:
            executors = executor_pids(cluster, int(name.split("-")[1]))
        processes.append(ProcessStatus(name, pid, process is not None, rss, executors))
    result = ClusterStatus(cluster, processes)
    state = master_state(cluster) if processes[0].running else None
    if state:
        result.alive_workers = len(_alive_worker_ports(state))
        result.applications = [app["id"] for app in state.get("activeapps", [])]
    return result


@contextmanager
def connect(cluster: SparkCluster, timeout_s: float | None = 60.0) -> Iterator[Any]:
    """A PyHive connection to the cluster's Thrift server; ``timeout_s`` bounds each socket
    read (None: a query may run as long as it takes)."""
    from pyhive import hive
    from thrift.transport import TSocket
    from thrift_sasl import TSaslClientTransport

    sock = TSocket.TSocket(HOST, cluster.thrift_port)
    if timeout_s is not None:
        sock.setTimeout(timeout_s * 1000)
    transport = TSaslClientTransport(
        lambda: hive.get_installed_sasl(
            host=HOST, sasl_auth="PLAIN", service=None, username=THRIFT_USER, password="x"
        ),
        "PLAIN",
        sock,
    )
    con = hive.connect(thrift_transport=transport, username=THRIFT_USER)
    try:
        yield con
    finally:
        con.close()


def query(cluster: SparkCluster, sql: str, timeout_s: float | None = 60.0) -> list[tuple]:
    """The rows of one statement run through the Thrift server."""
    with connect(cluster, timeout_s) as con:
        cursor = con.cursor()
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []


def _environment(cluster: SparkCluster) -> dict[str, str]:
    # nothing of another Spark installation's settings leaks in
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_CONF_DIR=str(cluster.folder / "conf"),
        SPARK_LOCAL_IP=HOST,
        SPARK_LOG_DIR=str(cluster.folder / "logs"),
        SPARK_PID_DIR=str(cluster.folder / "pids"),
        SPARK_LOCAL_DIRS=str(cluster.folder / "local"),
        SPARK_WORKER_DIR=str(cluster.folder / "work"),
        # the master's and workers' JVMs: the marker stop() recognises them by
        SPARK_DAEMON_JAVA_OPTS=cluster.marker,
        # no REST submission server: it would listen on one more fixed port (6066)
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
    )
    return env


def _commands(cluster: SparkCluster) -> dict[str, list[str]]:
    home = spark_home()
    spark_class = str(home / "bin" / "spark-class")
    commands = {
        "master": [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host", HOST,
            "--port", str(cluster.master_port),
            "--webui-port", str(cluster.webui_port),
        ],
    }  # fmt: skip
    for number in range(1, cluster.workers + 1):
        commands[f"worker-{number}"] = [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            "--host", HOST,
            "--cores", "1",
            "--memory", cluster.worker_memory,
            "--webui-port", str(cluster.worker_webui_port(number)),
            "--work-dir", str(cluster.folder / "work" / f"worker-{number}"),
            cluster.master_url,
        ]  # fmt: skip
    conf = {
        "spark.app.name": "ops-warehouse-thrift",
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        "spark.ui.port": str(cluster.app_ui_port),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(cluster.warehouse_dir),
        "spark.sql.catalogImplementation": "hive",
        # Derby keeps metastore_db/ and derby.log under derby.system.home
        "spark.driver.extraJavaOptions": (
            f"-Dderby.system.home={cluster.metastore_dir} {cluster.marker}"
        ),
        "spark.executor.extraJavaOptions": cluster.marker,
        "spark.executor.cores": "1",
        "spark.executor.memory": f"{cluster.executor_memory_mb}m",
        "spark.cores.max": str(cluster.workers),
        # a lost executor's tasks are run again elsewhere instead of failing the query
        "spark.task.maxFailures": "4",
        "spark.ui.showConsoleProgress": "false",
        # two shuffle partitions per core, not Spark's 200: on a few cores each partition is a
        # task to schedule, and the models' shuffles are small
        "spark.sql.shuffle.partitions": str(2 * cluster.workers),
        # the driver plans every query and collects what the checks and readers fetch
        "spark.driver.memory": "2g",
        # a result goes to the client a partition at a time, not collected whole in the
        # driver first: a check that reads a 1-million-row table at scale 10 ran it out of heap
        "spark.sql.thriftServer.incrementalCollect": "true",
    }
    submit = [str(home / "bin" / "spark-submit")]
    submit += ["--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"]
    submit += ["--master", cluster.master_url]
    for key, value in conf.items():
        submit += ["--conf", f"{key}={value}"]
    submit += ["spark-internal"]
    submit += ["--hiveconf", f"hive.server2.thrift.port={cluster.thrift_port}"]
    submit += ["--hiveconf", f"hive.server2.thrift.bind.host={HOST}"]
    commands["thrift"] = submit
    return commands


def _launch(cluster: SparkCluster, name: str, command: list[str], env: dict[str, str]) -> int:
    log = cluster.log(name)
    with log.open("a") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
        out.flush()
        # a session of its own: a terminal's Ctrl-C does not reach the cluster; `down` stops it
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cluster.folder,
            start_new_session=True,
        )
    cluster.pid_file(name).write_text(f"{proc.pid}\n")
    _started[proc.pid] = proc
    return proc.pid


# the processes this Python process started (so that stop() can collect their exit status)
_started: dict[int, subprocess.Popen] = {}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


class _Waiter:
    """Polls for a condition until the start's deadline, failing at once when one of the
    cluster's processes has exited (naming it and showing its log's last lines)."""

    def __init__(self, cluster: SparkCluster, timeout_s: float) -> None:
        self.cluster = cluster
        self.started = time.monotonic()
        self.deadline = self.started + timeout_s
        self.timeout_s = timeout_s

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def until(self, what: str, names: list[str], done: Callable[[], bool]) -> None:
        while True:
            for name in names:
                pid = _pid(self.cluster, name)
                if pid is None or _ours(self.cluster, pid) is None:
                    log = self.cluster.log(name)
                    raise SparkClusterError(
                        f"the Spark {name} exited while waiting for {what}; its log, "
                        f"{log}, ends with:\n{_tail(log)}"
                    )
            if done():
                return
            if time.monotonic() > self.deadline:
                logs = ", ".join(str(self.cluster.log(n)) for n in names)
                raise SparkClusterError(
                    f"timed out after {self.timeout_s:.0f} s waiting for {what}; read {logs} "
                    f"(stop the cluster with `make spark-down`)"
                )
            time.sleep(0.5)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


def _thrift_answers(cluster: SparkCluster, timeout_s: float) -> bool:
    if not _listening(cluster.thrift_port):
        return False  # not yet: spares the Thrift client's "could not connect" log lines
    try:
        return query(cluster, READY_QUERY, timeout_s=timeout_s) == [(2,)]
    except Exception:  # noqa: BLE001 - not up yet: refused, reset, not a session yet
        return False


def start(
    cluster: SparkCluster | None = None,
    timeout_s: float = START_TIMEOUT_S,
    say: Callable[[str], None] = print,
) -> SparkCluster:
    """Start the cluster (``from_env()`` when none is given) and wait until the Thrift
    server answers a query run on the workers; returns the cluster that runs.

    Idempotent: a cluster recorded in the folder whose processes all run is reused as it is
    (its own ports, whatever was asked); one partly running is stopped and started again."""
    cluster = cluster or SparkCluster.from_env()
    recorded = _recorded(cluster.folder)
    if recorded is not None:
        current = status(recorded)
        if current.running:
            if recorded != cluster:
                say(f"reusing the cluster already running in {cluster.folder} (its own settings)")
            waiter = _Waiter(recorded, timeout_s)
            waiter.until(
                f"the Thrift server on {HOST}:{recorded.thrift_port}",
                recorded.process_names,
                lambda: _thrift_answers(recorded, timeout_s=30),
            )
            say(f"already running: thrift server answering on {HOST}:{recorded.thrift_port}")
            return recorded
        if not current.stopped:
            down = ", ".join(p.name for p in current.processes if not p.running)
            say(f"restarting the cluster in {cluster.folder}: not running: {down}")
        stop(recorded, say=lambda _line: None)

    for name, port in cluster.ports.items():
        holder = port_holder(HOST, port)
        if holder:
            raise SparkClusterError(
                f"port {port} ({name} of the Spark cluster) is taken by {holder}; stop it or "
                "choose other ports (OPS_SPARK_MASTER_PORT, OPS_SPARK_WEBUI_PORT, "
                "OPS_SPARK_THRIFT_PORT)"
            )
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise SparkClusterError("Spark needs Java (17 or later): no java on PATH, no JAVA_HOME")
    for sub in ("conf", "logs", "pids", "work", "local", "warehouse", "metastore"):
        (cluster.folder / sub).mkdir(parents=True, exist_ok=True)
    state = asdict(cluster) | {"folder": str(cluster.folder)}
    cluster.state_file.write_text(json.dumps(state, indent=2) + "\n")

    env = _environment(cluster)
    commands = _commands(cluster)
    waiter = _Waiter(cluster, timeout_s)
    _launch(cluster, "master", commands["master"], env)
    waiter.until(
        f"the master's web UI on {cluster.master_webui_url}",
        ["master"],
        lambda: (master_state(cluster) or {}).get("status") == "ALIVE",
    )
    say(
        f"master up on {cluster.master_url} (web UI {cluster.master_webui_url}) "
        f"after {waiter.elapsed():.0f} s"
    )

    # the workers and the Thrift server start side by side: the driver's start (its
    # SparkContext, the metastore) takes longest, and it is granted executors as workers join
    workers = [f"worker-{n}" for n in range(1, cluster.workers + 1)]
    for name in [*workers, "thrift"]:
        _launch(cluster, name, commands[name], env)
    announced: set[int] = set()

    def registered() -> bool:
        alive = _alive_worker_ports(master_state(cluster) or {})
        for number in range(1, cluster.workers + 1):
            if number not in announced and cluster.worker_webui_port(number) in alive:
                announced.add(number)
                say(
                    f"worker {number} up ({cluster.worker_memory}, 1 core) "
                    f"after {waiter.elapsed():.0f} s"
                )
        return len(announced) == cluster.workers

    waiter.until("the workers to register with the master", cluster.process_names, registered)
    waiter.until(
        f"the Thrift server on {HOST}:{cluster.thrift_port} to answer a query",
        cluster.process_names,
        lambda: _thrift_answers(cluster, timeout_s=max(5.0, waiter.deadline - time.monotonic())),
    )
    say(f"thrift server answering on {HOST}:{cluster.thrift_port} after {waiter.elapsed():.0f} s")
    return cluster


def stop(
    cluster: SparkCluster | None = None,
    grace_s: float = STOP_GRACE_S,
    say: Callable[[str], None] = print,
) -> list[int]:
    """Stop every process of the cluster: SIGTERM (the Thrift server first, so that its
    application ends cleanly), SIGKILL after ``grace_s`` to whatever is left, executors
    included; removes the pid files. Returns the pids that were running."""
    cluster = cluster or SparkCluster.from_env()
    cluster = _recorded(cluster.folder) or cluster
    processes = _all_processes(cluster)
    if processes:
        thrift_pid = _pid(cluster, "thrift")
        first = [p for p in processes if p.pid == thrift_pid]
        _signal(first, "terminate")
        psutil.wait_procs(first, timeout=min(grace_s, 10.0))
        processes = _all_processes(cluster) + processes
        _signal(processes, "terminate")
        _gone, alive = psutil.wait_procs(_unique(processes), timeout=grace_s)
        if alive:
            say(f"killing {len(alive)} Spark processes still running after {grace_s:.0f} s")
            _signal(alive, "kill")
            psutil.wait_procs(alive, timeout=10)
    for pid in [p.pid for p in processes]:
        proc = _started.pop(pid, None)
        if proc is not None:
            proc.poll()
    for name in cluster.process_names:
        cluster.pid_file(name).unlink(missing_ok=True)
    left = _all_processes(cluster)
    if left:
        raise SparkClusterError(
            f"Spark processes of {cluster.folder} still run after SIGKILL: "
            + ", ".join(str(p.pid) for p in left)
        )
    pids = sorted({p.pid for p in processes})
    say(f"stopped {len(pids)} Spark processes of {cluster.folder}" if pids else "not running")
    return pids


def _unique(processes: list[psutil.Process]) -> list[psutil.Process]:
    return list({p.pid: p for p in processes}.values())


def _signal(processes: list[psutil.Process], how: str) -> None:
    for process in processes:
        try:
            getattr(process, how)()
        except psutil.NoSuchProcess:
            pass


def _print_status(current: ClusterStatus) -> None:
    cluster = current.cluster
    print(f"Spark cluster in {cluster.folder}")
    for p in current.processes:
        state = f"pid {p.pid}, {p.rss_mb:.0f} MiB" if p.running else "not running"
        extra = f", executors {p.executors}" if p.executors else ""
        print(f"  {p.name:<9} {state}{extra}")
    if current.processes[0].running:
        print(f"  master {cluster.master_url}, web UI {cluster.master_webui_url}")
        print(f"  {current.alive_workers} ALIVE workers, applications {current.applications}")
    if current.processes[-1].running:
        print(f"  thrift server {HOST}:{cluster.thrift_port}, its UI {cluster.app_ui_url}")
    print(f"  logs in {cluster.folder / 'logs'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops_warehouse.warehouse.spark_cluster",
        description="The local Spark standalone cluster (settings: OPS_SPARK_* variables).",
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--timeout", type=float, default=START_TIMEOUT_S, help="seconds `up` waits (180)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            start(timeout_s=args.timeout)
        elif args.command == "down":
            stop()
        else:
            current = status()
            _print_status(current)
            return 0 if current.running else 3
    except (SparkClusterError, OpsWarehouseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
