"""Scale benchmark: the whole pipeline and one incremental day, with the floor and overheads.

    uv run python bench/bench.py [--scale 1,10,50] [--root DIR] [--no-airflow]
                                 [--engine spark [--spark-worker-memory 2g]]

For each scale, in a fresh folder under ``--root`` (default ``var/bench/pipeline/`` in the
repository, which git ignores; ``OPS_BENCH_ROOT`` or ``--root`` put it elsewhere, e.g. on a
larger disk):

1. generate the demo world (seed 42, until 2026-11-22);
2. the pipeline, one child process per stage, the way Airflow's LocalExecutor runs each task
   in its own process forked from a worker that has already imported Airflow (``Worker``):
   ingest marketing, sales, support (``run_load``), validate raw (GX), ``dbt build``,
   validate staging + marts (GX), then publish and the reports beside the Data Docs (two
   workers at once, as the DAGs run them); the reports are those the day's schedule makes
   (the weekly report on Mondays, the daily digest every day);
3. baselines on the same data: the *floor* (dbt's compiled SQL of every model run as
   CREATE TABLE/VIEW AS in dependency order, in one DuckDB connection, on a copy of the
   warehouse with the model schemas dropped), ``dbt run`` alone on that copy, and the GX
   suites against the same checks written as plain SQL aggregates;
4. the world advanced one day, then the incremental day through the same stages;
5. the same incremental day again through Airflow (``dag.test`` of every DAG in one process,
   as ``make demo`` runs them): DAG wall time against the task durations Airflow recorded;
6. parse time of every file under ``dags/``, each in a fresh process.

Per stage: wall time, CPU time and peak RSS of the stage's process *including its children*
(dbt runs in a grandchild): the child is reaped with ``os.wait4``, whose rusage covers the
child and every descendant it waited for (CPU summed, RSS the largest single process). The
demo API server is a separate process; its CPU per ingest stage is read with psutil and
reported in its own column. Rows are the stage's input rows (see ``ROWS`` below).

``--engine spark``: the same pipeline on Apache Spark (``OPS_WAREHOUSE=spark``). Each scale
starts a local standalone cluster of its own in ``<scale folder>/spark`` on free ports (two
workers of one core, ``--spark-worker-memory`` each, and the Thrift server), the lake in
``<scale folder>/lake``, and stops it when the scale ends, on error or Ctrl-C too. Loads land
in DuckDB as on DuckDB; ``dbt_build`` times the lake sync (raw tables to Parquet) as its own
part; every Spark build is a full one, the incremental day included. The JVMs are outside the
stages' process trees: their RSS is sampled every second (peak per process, per role and all
together) and their CPU per stage read with psutil. Baselines, the equivalence check, the task
overhead and Airflow are DuckDB's only. The results are keyed ``<scale> spark``.

Results: ``bench/results/<date>-<host>.json`` (merged per scale) and the table between the
markers in ``BENCHMARKS.md``. Timings are measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
# Work folders: under the repository's git-ignored var/, beside bench_ingest's var/bench/scale-*
DEFAULT_ROOT = REPO / "var" / "bench" / "pipeline"
UNTIL = date(2026, 11, 22)
SEED = 42
SOURCES = ("marketing", "sales", "support")
MODEL_SCHEMAS = ("staging", "intermediate", "marts")
TABLE_BEGIN = "<!-- bench:table:begin -->"
TABLE_END = "<!-- bench:table:end -->"

# What "rows" means per stage (the stage's input).
ROWS = {
    "generate": "rows written to the world (all entities)",
    "ingest_*": "rows read from the source",
    "validate_raw": "rows in the raw tables the suites read",
    "dbt_build": "rows in the raw tables (dbt recomputes from all of them)",
    "validate_marts": "rows in the staging models and marts the suites read",
    "publish": "rows in the marts",
    "data_docs": "none (Great Expectations' result files of the run)",
    "floor": "rows in the raw tables",
    "dbt_run": "rows in the raw tables",
}


# --- the parent: measuring child processes ------------------------------------------------


@dataclass
class Stage:
    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    rows: int | None = None
    ok: bool = True
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.wall_s if self.rows and self.wall_s else None


class Sampler(threading.Thread):
    """Load average and available memory every few seconds while the benchmark runs."""

    def __init__(self, every_s: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.samples: list[tuple[float, float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            vm = psutil.virtual_memory()
            swap = psutil.swap_memory()
            self.samples.append((os.getloadavg()[0], vm.available / 2**30, swap.used / 2**30))
            self._halt.wait(self.every_s)

    def stop(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        loads = [s[0] for s in self.samples] or [os.getloadavg()[0]]
        return {
            "load1_min": round(min(loads), 2),
            "load1_mean": round(sum(loads) / len(loads), 2),
            "load1_max": round(max(loads), 2),
            "mem_available_min_gb": round(min((s[1] for s in self.samples), default=0), 1),
            "swap_used_max_gb": round(max((s[2] for s in self.samples), default=0), 2),
            "samples": len(self.samples),
        }


class Bench:
    def __init__(
        self,
        scale: float,
        root: Path,
        console,
        log,
        engine: str = "duckdb",
        jvms: JvmSampler | None = None,
    ) -> None:
        self.scale = scale
        self.root = root
        self.console = console
        self.log = log
        self.engine = engine
        # Spark: the cluster's JVMs, sampled around each stage (their CPU is outside its tree)
        self.jvms = jvms
        from ops_demo import with_demo_tokens

        self.env = {
            **with_demo_tokens(dict(os.environ)),
            "OPS_HOME": str(root / "home"),
            "OPS_DEMO_DIR": str(root / "world"),
            "OPS_DEMO_SCALE": f"{scale:g}",
            "OPS_DEMO_SEED": str(SEED),
            "OPS_DEMO_UNTIL": UNTIL.isoformat(),
            "OPS_WAREHOUSE": engine,
            "OPS_DEMO_PORT": str(_free_port()),
        }
        for key in ("OPS_MARKETING_API_URL", "OPS_SUPPORT_API_URL", "OPS_SHOP_DB_URL"):
            self.env.pop(key, None)
        self.server = None
        self.server_runs = []
        self._warm_cpu: float | None = None
        self._workers: list[Worker] = []
        self._lanes = 0  # > 0 while ``together`` runs lanes of stages

    def stage(
        self,
        name: str,
        task: str,
        *,
        forked: bool = False,
        worker: Worker | None = None,
        **kwargs: Any,
    ) -> Stage:
        """Run ``task`` (a function of this file) in a child process and measure it.

        ``forked``: an Airflow task. The child is forked from the worker process, which has
        Airflow imported, as LocalExecutor's workers fork each task; otherwise a fresh
        interpreter. ``worker``: which worker forks it (``together``); else the first."""
        out = self.root / "stages" / f"{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            __file__,
            "--task",
            task,
            "--out",
            str(out),
            "--kw",
            json.dumps(kwargs),
        ]
        server_cpu0 = self._server_cpu()
        self.log.write(
            f"\n### {name}: {'forked from the worker: ' if forked else ''}{' '.join(cmd)}\n"
        )
        self.log.flush()
        if forked and worker is None:
            worker = self.worker()  # started (Airflow imported) before the clock
        # one live status line at a time: stages running together print only their results
        status = (
            self.console.status(f"scale {self.scale:g}: {name} …") if self._lanes == 0 else None
        )
        with status or contextlib.nullcontext():
            if self.jvms is not None:
                self.jvms.begin()
            started = time.monotonic()
            if worker is not None:
                returncode, usage = worker.run(task, out, kwargs)
            else:
                proc = subprocess.Popen(
                    cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
                )
                status, usage = _wait_guarded(proc.pid)
                returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - started
        cluster = self.jvms.end() if self.jvms is not None else {}
        detail = json.loads(out.read_text()) if out.exists() else {}
        detail.update(cluster)
        rows = detail.pop("rows", None)
        if self.server is not None and server_cpu0 is not None:
            detail["server_cpu_s"] = round(self._server_cpu() - server_cpu0, 2)
        result = Stage(
            name=name,
            wall_s=round(wall, 2),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
            peak_rss_mb=round(usage.ru_maxrss / 1024),
            rows=rows,
            # a task may report a failure it survived (the report on Spark): the run goes on
            ok=returncode == 0 and not detail.get("failed"),
            detail=detail,
        )
        mark = "[green]✓[/]" if result.ok else "[red]✗[/]"
        rate = f", {result.rows_per_s:,.0f} rows/s" if result.rows_per_s else ""
        jvm = (
            f"; Spark JVMs {cluster['cluster_cpu_s']:.1f} s CPU, "
            f"{cluster['cluster_rss_peak_mb']:,.0f} MB peak"
            if cluster
            else ""
        )
        self.console.print(
            f"  {mark} {name}: {result.wall_s:.1f} s wall, {result.cpu_s:.1f} s CPU, "
            f"{result.peak_rss_mb:,.0f} MB peak{rate}{jvm}"
        )
        if returncode != 0:
            raise RuntimeError(f"stage {name} failed (exit {returncode}); see {self.log.name}")
        if not result.ok:
            self.console.print(f"    [red]failed, the run goes on:[/] {detail.get('why')}")
        return result

    def worker(self, index: int = 0) -> Worker:
        while len(self._workers) <= index:
            self._workers.append(Worker(self.env, self.log))
        return self._workers[index]

    def together(self, lanes: list[list[tuple[str, str, dict[str, Any]]]]) -> list[Stage]:
        """Lanes of Airflow tasks that do not wait for each other, at the same time, as
        LocalExecutor runs them (``parallelism`` = the cores): each lane's stages in order,
        each lane forked from a worker of its own. Every stage keeps its own measure; the
        group's wall (first start to last end) is recorded in each one's detail
        (``together``), and the phase total counts it once instead of their walls. On Spark,
        whose cluster is sampled around one stage at a time, the lanes run one after the
        other."""
        if self.jvms is not None:
            return [
                self.stage(name, task, forked=True, **kw)
                for lane in lanes
                for name, task, kw in lane
            ]
        workers = [self.worker(i) for i in range(len(lanes))]  # started before the clock
        results: list[list[Stage]] = [[] for _ in lanes]
        errors: list[BaseException] = []

        def run_lane(i: int) -> None:
            try:
                for name, task, kw in lanes[i]:
                    results[i].append(self.stage(name, task, forked=True, worker=workers[i], **kw))
            except BaseException as exc:  # raised again in the caller, after every lane ended
                errors.append(exc)

        threads = [threading.Thread(target=run_lane, args=(i,)) for i in range(len(lanes))]
        self._lanes = len(lanes)
        started = time.monotonic()
        try:
            with self.console.status(
                f"scale {self.scale:g}: "
                + " | ".join(" → ".join(name for name, _, _ in lane) for lane in lanes)
                + " …"
            ):
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        finally:
            self._lanes = 0
        wall = round(time.monotonic() - started, 2)
        stages = [stage for lane in results for stage in lane]
        group = " | ".join(" → ".join(stage.name for stage in lane) for lane in results)
        for stage in stages:
            stage.detail["together"] = {"group": group, "wall_s": wall}
        self.console.print(f"  together: {group}: {wall:.1f} s wall")
        if errors:
            raise errors[0]
        return stages

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

    # the demo API server: up only while something ingests. It stands for the source systems,
    # which live on other machines; it keeps every row's JSON in memory (2.4 GB at scale 10),
    # which would otherwise sit beside dbt and GX on this one.

    server_runs: list[dict[str, Any]]

    def start_server(self) -> None:
        import psutil

        if self.server is not None:
            return

        log = (self.root / "server.log").open("a")
        self.server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ops_demo.server",
                "--dir",
                self.env["OPS_DEMO_DIR"],
                "--port",
                self.env["OPS_DEMO_PORT"],
                # up with its data in memory before the clock, as a source system is: a cold
                # demo server would charge its file reading to the first ingest
                "--warm",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._server_ps = psutil.Process(self.server.pid)
        url = f"http://127.0.0.1:{self.env['OPS_DEMO_PORT']}/_demo/config"
        import urllib.request

        deadline = time.monotonic() + 900  # warming reads every row: ≈40 s at scale 50
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                self._warm_cpu = self._server_cpu()
                return
            except OSError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the demo server did not start; see server.log") from None
                time.sleep(0.2)

    def stop_server(self) -> dict[str, Any]:
        if self.server is None:
            return {}
        peak = _vm_hwm_mb(self.server.pid)
        cpu = self._server_cpu()
        self.server.terminate()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None
        run = {
            "cpu_s": round(cpu or 0, 2),
            "warm_cpu_s": round(self._warm_cpu or 0, 2),
            "peak_rss_mb": peak,
        }
        self.server_runs.append(run)
        return run

    def server_summary(self) -> dict[str, Any]:
        """The demo server over the whole scale: CPU summed, the largest peak of its runs."""
        self.stop_server()
        runs = self.server_runs
        return {
            "cpu_s": round(sum(r["cpu_s"] for r in runs), 2),
            "warm_cpu_s": round(sum(r.get("warm_cpu_s", 0) for r in runs), 2),
            "peak_rss_mb": max((r["peak_rss_mb"] or 0 for r in runs), default=None),
            "runs": len(runs),
        }

    def _server_cpu(self) -> float | None:
        if self.server is None:
            return None
        t = self._server_ps.cpu_times()
        return t.user + t.system


# The machine is shared: a stage that would push it into the OOM killer is stopped instead.
MIN_AVAILABLE_GB = 2.0


# How often a stage's child is polled for its end, and every how many polls the machine's
# free memory is read. Until the fifth round the child was polled every 0.2 s, which rounded
# every stage's wall up to the next 0.2 s (0.1 s a stage on average, about 1 s a day).
POLL_S = 0.01
MEMORY_EVERY = 20


def _wait_guarded(child: int):
    """Reap the child with its rusage (os.wait4); stop its process tree if the machine runs
    out of memory (there is no swap to fall back on)."""
    import psutil

    polls = 0
    while True:
        pid, status, usage = os.wait4(child, os.WNOHANG)
        if pid:
            return status, usage
        polls += 1
        if polls % MEMORY_EVERY == 0 and (
            psutil.virtual_memory().available < MIN_AVAILABLE_GB * 2**30
        ):
            tree = psutil.Process(child).children(recursive=True)
            for p in [*tree, psutil.Process(child)]:
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            _, status, usage = os.wait4(child, 0)
            raise MemoryError(
                f"stopped the stage: less than {MIN_AVAILABLE_GB} GiB of memory left "
                f"(peak RSS so far {usage.ru_maxrss // 1024} MB)"
            )
        time.sleep(POLL_S)


class Worker:
    """A stand-in for one of LocalExecutor's pre-forked workers: a process that has imported
    Airflow (and the task supervisor) once and forks a child per task. Only the child's own
    work is measured, as in a real deployment, where the import is paid once per worker."""

    def __init__(self, env: dict[str, str], log) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        ready = self.proc.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError("the bench worker did not start; see bench.log")

    def run(self, task: str, out: Path, kw: dict):
        self.proc.stdin.write(json.dumps({"task": task, "out": str(out), "kw": kw}) + "\n")
        reply = json.loads(self.proc.stdout.readline())
        if reply.get("memory_error"):
            raise MemoryError(reply["memory_error"])
        usage = argparse.Namespace(**reply["usage"])
        return reply["returncode"], usage

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def worker_main() -> int:
    """The worker's loop: one JSON request per line on stdin, one reply per line on stdout.
    The child's stdout and stderr go to the worker's stderr (the bench log)."""
    # replies go to the real stdout; anything else printed here or in a task, to the log
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import airflow  # noqa: F401  (what a LocalExecutor worker has loaded before it forks)
    import airflow.sdk  # noqa: F401
    from airflow.sdk.execution_time import supervisor, task_runner  # noqa: F401

    from ops_warehouse import preload

    # what the project's executor (airflow/executor.py) imports before it forks its workers
    if preload.enabled():
        took = preload.preload_task_libraries()
        print(f"preloaded {', '.join(took)} in {sum(took.values()):.1f} s", file=sys.stderr)
    import gc

    gc.freeze()  # as LocalExecutor does before it forks its workers
    print("ready", file=replies, flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the task
            replies.close()
            code = 1
            try:
                import logging

                logging.basicConfig(
                    level=logging.INFO, force=True, format="%(levelname)s %(name)s: %(message)s"
                )
                result = TASKS[req["task"]](req["kw"])
                Path(req["out"]).write_text(json.dumps(result, default=str))
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        try:
            status, usage = _wait_guarded(pid)
            reply = {"returncode": os.waitstatus_to_exitcode(status)}
        except MemoryError as exc:
            reply = {"memory_error": str(exc)}
            usage = None
        if usage is not None:
            reply["usage"] = {k: getattr(usage, k) for k in ("ru_utime", "ru_stime", "ru_maxrss")}
        print(json.dumps(reply), file=replies, flush=True)
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


# --- Spark: the cluster a scale runs on, and its JVMs' memory ----------------------------

# a JVM's role in the cluster, by the main class on its command line (the first match wins:
# the Thrift server's driver carries both SparkSubmit and HiveThriftServer2)
_JVM_ROLES = (
    ("org.apache.spark.executor.CoarseGrainedExecutorBackend", "executor"),
    ("org.apache.spark.deploy.master.Master", "master"),
    ("org.apache.spark.deploy.worker.Worker", "worker"),
    ("org.apache.spark.sql.hive.thriftserver.HiveThriftServer2", "thrift_driver"),
    ("org.apache.spark.deploy.SparkSubmit", "thrift_driver"),
)
# how often the JVMs' list is read again from /proc (executors may come and go); their RSS
# and CPU are read every sample
_JVM_DISCOVER_EVERY = 3


def _jvm_identity(cmdline: list[str]) -> tuple[str, str, str | None] | None:
    """(role, name, -Xmx) of one of the cluster's JVMs; None for anything else (the
    spark-class launcher). Workers are named by their work folder (``worker-1``), executors by
    their id in the Thrift server's application (``executor-0``)."""
    role = next((r for main_class, r in _JVM_ROLES if main_class in cmdline), None)
    if role is None:
        return None

    def after(flag: str) -> str | None:
        return cmdline[cmdline.index(flag) + 1] if flag in cmdline[:-1] else None

    name = role
    if role == "worker":
        name = Path(after("--work-dir") or "worker").name
    elif role == "executor":
        name = f"executor-{after('--executor-id') or '?'}"
    xmx = next((a[4:] for a in reversed(cmdline) if a.startswith("-Xmx")), None)
    return role, name, xmx


class JvmSampler(threading.Thread):
    """The RSS and CPU of one cluster's JVMs (every process carrying its marker, executors
    included) every ``every_s`` seconds: the peak per process and of all of them at once over
    the run, and per stage (``begin``/``end``) the peak of all of them and their CPU."""

    def __init__(self, marker: str, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.marker = marker
        self.every_s = every_s
        self._halt = threading.Event()
        self._lock = threading.RLock()
        self._procs: dict[int, tuple[Any, str]] = {}  # pid: (psutil.Process, name)
        self.roles: dict[str, str] = {}  # name: role
        self.xmx: dict[str, str | None] = {}
        self.peak_mb: dict[str, float] = {}  # name: its largest RSS
        self.total_peak_mb = 0.0
        self._cpu: dict[int, float] = {}  # pid: CPU seconds when last seen (exited ones stay)
        self._samples = 0
        self._stage_peak_mb = 0.0
        self._stage_cpu0 = 0.0

    def _discover(self) -> None:
        import psutil

        for p in psutil.process_iter(["cmdline"]):
            if p.pid in self._procs:
                continue
            try:
                cmdline = p.info["cmdline"] or []
            except psutil.Error:
                continue
            if self.marker not in cmdline:
                continue
            identity = _jvm_identity(cmdline)
            if identity is None:
                continue
            role, name, xmx = identity
            self._procs[p.pid] = (p, name)
            self.roles[name] = role
            self.xmx[name] = xmx

    def sample(self, discover: bool = False) -> float:
        """Read every JVM's RSS and CPU now; returns their RSS together, in MB."""
        import psutil

        with self._lock:
            if discover or self._samples % _JVM_DISCOVER_EVERY == 0:
                self._discover()
            self._samples += 1
            total = 0.0
            for pid, (p, name) in list(self._procs.items()):
                try:
                    with p.oneshot():
                        rss = p.memory_info().rss / 2**20
                        cpu = p.cpu_times()
                except psutil.Error:
                    del self._procs[pid]
                    continue
                self._cpu[pid] = cpu.user + cpu.system
                total += rss
                self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), rss)
            self.total_peak_mb = max(self.total_peak_mb, total)
            self._stage_peak_mb = max(self._stage_peak_mb, total)
            return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.every_s)

    def begin(self) -> None:
        """A stage starts: its peak and CPU count from now."""
        with self._lock:
            self._stage_peak_mb = 0.0
            self.sample(discover=True)
            self._stage_cpu0 = sum(self._cpu.values())

    def end(self) -> dict[str, float]:
        """A stage ended: the JVMs' CPU seconds during it and their largest RSS together."""
        with self._lock:
            self.sample(discover=True)
            return {
                "cluster_cpu_s": round(sum(self._cpu.values()) - self._stage_cpu0, 2),
                "cluster_rss_peak_mb": round(self._stage_peak_mb),
            }

    def stop(self) -> dict[str, Any]:
        """The run's peaks: per JVM, per role (its largest process) and all JVMs at once."""
        self._halt.set()
        if self.is_alive():
            self.join()
        by_role: dict[str, dict[str, Any]] = {}
        for name, peak in sorted(self.peak_mb.items()):
            role = by_role.setdefault(
                self.roles[name], {"peak_mb": 0, "processes": 0, "xmx": self.xmx[name]}
            )
            role["peak_mb"] = max(role["peak_mb"], round(peak))
            role["processes"] += 1
        return {
            "jvm_peak_mb": {n: round(v) for n, v in sorted(self.peak_mb.items())},
            "jvm_peak_by_role": by_role,
            "jvm_total_peak_mb": round(self.total_peak_mb),
            "jvm_cpu_s": round(sum(self._cpu.values()), 1),
            "jvm_samples": self._samples,
        }


@dataclass(frozen=True)
class SparkOptions:
    """The cluster each scale runs on with ``--engine spark``."""

    workers: int = 2
    worker_memory: str = "2g"


def _spark_version(home: Path) -> str:
    match = re.search(r"""__version__[^=]*=\s*['"]([^'"]+)""", (home / "version.py").read_text())
    return match.group(1) if match else "unknown"


class SparkRun:
    """One scale's Spark cluster, in ``<root>/spark`` on free ports, its lake in
    ``<root>/lake``: ``start`` sets the OPS_SPARK_* variables in this process's environment
    (every stage and the worker inherit it through ``Bench``) and samples the JVMs; ``stop``
    ends every process of the cluster and puts the environment back."""

    def __init__(self, options: SparkOptions, root: Path, console) -> None:
        from ops_warehouse.warehouse.spark_cluster import SparkCluster, free_port_block

        self.options = options
        self.console = console
        self.lake = root / "lake"
        workers = options.workers
        # master, its web UI, one web UI per worker, the Thrift server's UI, the Thrift port
        base = free_port_block(workers + 4)
        self.cluster = SparkCluster(
            folder=root / "spark",
            master_port=base,
            webui_port=base + 1,
            thrift_port=base + workers + 3,
            workers=workers,
            worker_memory=options.worker_memory,
        )
        self.jvms = JvmSampler(self.cluster.marker)
        self._saved_env: dict[str, str | None] = {}
        self.started_s: float | None = None

    def env(self) -> dict[str, str]:
        return {
            "OPS_WAREHOUSE": "spark",
            "OPS_SPARK_HOME_DIR": str(self.cluster.folder),
            "OPS_SPARK_THRIFT_HOST": "127.0.0.1",
            "OPS_SPARK_THRIFT_PORT": str(self.cluster.thrift_port),
            "OPS_SPARK_MASTER_PORT": str(self.cluster.master_port),
            "OPS_SPARK_WEBUI_PORT": str(self.cluster.webui_port),
            "OPS_SPARK_WORKERS": str(self.cluster.workers),
            "OPS_SPARK_WORKER_MEMORY": self.cluster.worker_memory,
            "OPS_SPARK_LAKE_DIR": str(self.lake),
        }

    def start(self) -> None:
        from ops_warehouse.warehouse.spark_cluster import start

        for key, value in self.env().items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self.lake.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with self.console.status(f"starting Spark in {self.cluster.folder} …"):
            start(self.cluster, say=lambda line: self.console.print(f"  spark: {line}"))
        self.started_s = round(time.monotonic() - t0, 1)
        self.jvms.start()

    def config(self) -> dict[str, Any]:
        from ops_warehouse.warehouse.spark_cluster import spark_home

        c = self.cluster
        return {
            "version": _spark_version(spark_home()),
            "folder": str(c.folder),
            "thrift_port": c.thrift_port,
            "workers": c.workers,
            "cores_per_worker": 1,
            "worker_memory": c.worker_memory,
            "executor_memory_mb": c.executor_memory_mb,
            "start_s": self.started_s,
        }

    def stop(self) -> dict[str, Any]:
        """Stop the sampler and every process of the cluster; returns the JVMs' peaks."""
        from ops_warehouse.warehouse.spark_cluster import stop

        peaks: dict[str, Any] = {}
        try:
            peaks = self.jvms.stop()
        finally:
            try:
                stop(self.cluster, say=lambda line: self.console.print(f"  spark: {line}"))
            finally:
                for key, value in self._saved_env.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                self._saved_env.clear()
        return peaks


# --- one scale ----------------------------------------------------------------------------


def run_scale(
    scale: float,
    root: Path,
    console,
    *,
    airflow: bool,
    baselines: bool,
    spark: SparkOptions | None = None,
    days: int = 1,
) -> dict:
    """One scale in a fresh ``root``. With ``spark``, on a Spark cluster of its own: the
    pipeline, the advance and the incremental day only (no baselines, equivalence, task
    overhead or Airflow). ``days`` > 1: that many incremental days in a row (``later_days``:
    the second and later ones), the equivalence checked after the last."""
    from ops_warehouse.warehouse.spark_cluster import SparkClusterError

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log = (root / "bench.log").open("a")
    sampler = Sampler()
    sampler.start()
    started = time.monotonic()
    result: dict[str, Any] = {
        "scale": scale,
        "engine": "spark" if spark is not None else "duckdb",
        "root": str(root),
        "started_at": _now(),
        "code": _git_state(),
    }
    console.rule(f"scale {scale:g}" + (" on Spark" if spark is not None else ""))
    cluster: SparkRun | None = None
    bench: Bench | None = None
    try:
        if spark is not None:
            cluster = SparkRun(spark, root, console)
            cluster.start()  # before Bench: the stages' environment carries the cluster's
            result["spark"] = cluster.config()
        bench = Bench(
            scale,
            root,
            console,
            log,
            engine=result["engine"],
            jvms=cluster.jvms if cluster is not None else None,
        )
        gen = bench.stage("generate", "generate", scale=scale)
        result["generate"] = asdict(gen)
        result["source_rows"] = gen.detail.get("row_counts")
        day_end = datetime.combine(UNTIL + timedelta(days=1), datetime.min.time(), UTC)
        pipeline(bench, day_end, "full", result)
        if baselines and spark is None:
            result["baselines"] = run_baselines(bench)
        adv = bench.stage("advance", "advance")
        result["advance"] = asdict(adv)
        # on Spark every model is written again (builds_incrementally), with the daily tests
        pipeline(bench, day_end + timedelta(days=1), "incremental", result)
        if days > 1:
            result["later_days"] = later_days(bench, day_end, days)
        if spark is None:
            result["equivalence"] = asdict(check_equivalence(bench, days))
            # what one more task process costs by itself: forked from the worker, nothing to do
            result["task_overhead"] = asdict(bench.stage("task_overhead", "noop", forked=True))
        if airflow and spark is None:
            result["airflow"] = run_airflow(bench, day_end + timedelta(days=days))
    except (RuntimeError, MemoryError, SparkClusterError) as exc:
        result["error"] = str(exc)
        console.print(f"[red]scale {scale:g} stopped:[/] {exc}")
    finally:
        try:
            if bench is not None:
                bench.close()
                result["demo_server"] = bench.server_summary()
        finally:
            if cluster is not None:  # also on Ctrl-C: the cluster runs in sessions of its own
                result.setdefault("spark", {}).update(cluster.stop())
            result["machine_during_run"] = sampler.stop()
            result["total_wall_s"] = round(time.monotonic() - started, 1)
            log.close()
    return result


def pipeline(bench: Bench, end: datetime, phase: str, into: dict) -> None:
    """The transform DAG's stages after the three ingests, each in its own process; the
    phase's stages go to ``into[phase]``, those done so far when one fails
    (``"complete": False``)."""
    stages: list[Stage] = []
    try:
        _pipeline_stages(bench, end, phase, stages)
    finally:
        into[phase] = _phase_result(bench, stages) if stages else {"stages": [], "total": {}}
        into[phase]["complete"] = len(stages) == len(SOURCES) + 6 and all(s.ok for s in stages)


def _pipeline_stages(bench: Bench, end: datetime, phase: str, stages: list[Stage]) -> None:
    ctx = {
        "start": (end - timedelta(days=1)).isoformat(),
        "end": end.isoformat(),
        "run_id": f"bench_{phase}__{end.date()}",
        # the mode the DAG run's conf asks for (pipeline/run_mode.py), whatever the weekday
        "full_rebuild": phase == "full",
    }
    bench.start_server()
    for source in SOURCES:
        stages.append(bench.stage(f"ingest_{source}", "ingest", forked=True, source=source, **ctx))
    bench.stop_server()
    stages.append(bench.stage("validate_raw", "validate", forked=True, layers=["raw"], **ctx))
    stages.append(bench.stage("dbt_build", "dbt_build", forked=True, **ctx))
    if phase == "full" and bench.engine == "duckdb":
        # the compiled SQL of a from-scratch build: the floor's input
        shutil.copy(
            bench.root / "home" / "dbt" / "target" / "manifest.json",
            bench.root / "manifest_full.json",
        )
    stages.append(
        bench.stage("validate_marts", "validate", forked=True, layers=["staging", "marts"], **ctx)
    )
    # the transform DAG's publish and data_docs wait only for validate_marts; the reports
    # DAGs run after publish: the digest on every day, the weekly report on its weekday
    reports = {**ctx, "reports": reports_of_the_day(end)}
    stages += bench.together(
        [
            [("publish", "publish", ctx), ("report", "report", reports)],
            [("data_docs", "data_docs", ctx)],
        ]
    )


# dags/weekly_report.py: Mondays ("0 8 * * 1"), after that night's run, whose as-of date is the
# Sunday before: the day OPS_FULL_REBUILD_DAYS rebuilds in full by default
WEEKLY_REPORT_WEEKDAY = 0


def reports_of_the_day(end: datetime) -> list[str]:
    """The reports the schedule makes on the day a run with this data interval end runs: the
    daily digest after every publish, the weekly report on its weekday only."""
    return ["weekly", "daily"] if end.weekday() == WEEKLY_REPORT_WEEKDAY else ["daily"]


def _phase_result(bench: Bench, stages: list[Stage]) -> dict:
    return {
        "stages": [asdict(s) | {"rows_per_s": s.rows_per_s} for s in stages],
        "total": phase_total(stages, bench.jvms is not None),
    }


def phase_total(stages: list[Stage], cluster: bool = False) -> dict:
    """A phase's wall is its stages' walls in a row, where stages that ran together
    (``Bench.together``) count with their group's wall, once; CPU is every stage's."""
    groups = {
        s.detail["together"]["group"]: s.detail["together"]["wall_s"]
        for s in stages
        if "together" in s.detail
    }
    total = {
        "wall_s": round(
            sum(s.wall_s for s in stages if "together" not in s.detail) + sum(groups.values()), 2
        ),
        "cpu_s": round(sum(s.cpu_s for s in stages), 2),
        "peak_rss_mb": max(s.peak_rss_mb for s in stages),
    }
    if cluster:  # Spark: the cluster's JVMs, outside the stages' trees
        total["cluster_cpu_s"] = round(sum(s.detail["cluster_cpu_s"] for s in stages), 2)
        total["cluster_rss_peak_mb"] = max(s.detail["cluster_rss_peak_mb"] for s in stages)
    return total


def run_baselines(bench: Bench) -> dict:
    """The floor, dbt run alone, and GX against plain SQL, on a copy of the warehouse."""
    floor_dir = bench.root / "floor"
    shutil.rmtree(floor_dir, ignore_errors=True)
    floor_dir.mkdir()
    # same file name, so the catalog name in dbt's compiled SQL ("working") still resolves
    copy = floor_dir / "working.duckdb"
    shutil.copy(bench.root / "home" / "warehouse" / "working.duckdb", copy)
    out = {}
    floor = bench.stage(
        "floor", "floor", db=str(copy), manifest=str(bench.root / "manifest_full.json")
    )
    dbt_run = bench.stage("dbt_run", "dbt_run", db=str(copy), target=str(floor_dir / "target"))
    ge_sql = bench.stage("gx_vs_sql", "gx_vs_sql", db=str(copy))
    end = datetime.combine(UNTIL + timedelta(days=1), datetime.min.time(), UTC)
    out["sweep"] = asdict(bench.stage("sweep", "sweep", db=str(copy), end=end.isoformat()))
    copy.unlink()
    return {**out, "floor": asdict(floor), "dbt_run": asdict(dbt_run), "gx_vs_sql": asdict(ge_sql)}


def later_days(bench: Bench, day_end: datetime, days: int) -> list[dict]:
    """Incremental days 2 .. ``days`` after the first: each day's advance and its pipeline,
    the same stages. A day's cost should follow its rows, not the number of days before it
    (what one day after a backfill cannot show: results, pages and logs that pile up)."""
    out = []
    for day in range(2, days + 1):
        advance = bench.stage(f"advance_{day}", "advance")
        into: dict[str, Any] = {}
        pipeline(bench, day_end + timedelta(days=day), "incremental", into)
        out.append({"day": day, "advance": asdict(advance), **into["incremental"]})
        if not into["incremental"]["complete"]:
            break
    return out


def check_equivalence(bench: Bench, days: int = 1) -> Stage:
    """The incremental days' marts against a full build of the same raw, on a copy: the rows
    each mart has on one side only (bookkeeping columns aside). 0 everywhere is the goal."""
    folder = bench.root / "equivalence"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    copy = folder / "working.duckdb"
    shutil.copy(bench.root / "home" / "warehouse" / "working.duckdb", copy)
    stage = bench.stage(
        "equivalence",
        "equivalence",
        db=str(copy),
        as_of=(UNTIL + timedelta(days=days)).isoformat(),
    )
    copy.unlink()
    return stage


def run_airflow(bench: Bench, end: datetime) -> dict:
    """The incremental day again, through Airflow: `dag.test` of every DAG in one process."""
    init = bench.stage("airflow_init", "airflow_init")
    logical_date = end.date().isoformat()
    bench.start_server()
    run = bench.stage("airflow_dags", "airflow_dags", logical_date=logical_date)
    bench.stop_server()
    parse = bench.stage("dag_parse", "dag_parse")
    return {"init": asdict(init), "dags": asdict(run), "parse": asdict(parse)}


# --- child tasks: each runs in its own process, writes a JSON dict to --out ------------


def _context(kw: dict) -> dict:
    from types import SimpleNamespace

    context = {
        "run_id": kw["run_id"],
        "data_interval_start": datetime.fromisoformat(kw["start"]),
        "data_interval_end": datetime.fromisoformat(kw["end"]),
    }
    if "full_rebuild" in kw:
        context["dag_run"] = SimpleNamespace(conf={"full_rebuild": kw["full_rebuild"]})
    return context


def task_generate(kw: dict) -> dict:
    from ops_demo import world
    from ops_warehouse.settings import get_settings

    info = world.generate(get_settings().demo_dir, seed=SEED, scale=kw["scale"], until=UNTIL)
    return {"rows": sum(info.row_counts.values()), "row_counts": info.row_counts}


def task_advance(kw: dict) -> dict:
    from ops_demo import world
    from ops_warehouse.settings import get_settings

    info = world.advance(get_settings().demo_dir, days=1)
    return {"rows": sum(info.row_counts.values()), "until": info.until.isoformat()}


def task_ingest(kw: dict) -> dict:
    from ops_warehouse.airflow.tasks import run_load

    ctx = _context(kw)
    summary = run_load(
        kw["source"], ctx["data_interval_start"], ctx["data_interval_end"], kw["run_id"]
    )
    rows = sum(e["rows_read"] for e in summary["entities"].values())
    return {
        "rows": rows,
        "load_seconds": summary["seconds"],
        "reconcile_s": summary["reconcile_s"],
        "entities": {n: e["rows_read"] for n, e in summary["entities"].items()},
    }


def task_sweep(kw: dict) -> dict:
    """The quarantine sweep as committed, alone, on a copy of the loaded warehouse."""
    import dataclasses

    from ops_warehouse.pipeline.quarantine import sweep
    from ops_warehouse.settings import get_settings

    s = dataclasses.replace(get_settings(), warehouse_path=Path(kw["db"]))
    moved = sweep(s, as_of_end=datetime.fromisoformat(kw["end"]), run_id="bench_sweep")
    return {"moved": sum(moved.values())}


def _table_rows(tables: list[str]) -> int:
    """The rows of ``tables`` together: raw tables where the loaders wrote them, dbt's models
    where dbt builds them (Spark's, on Spark). One query per side: on Spark each query is a
    job of its own."""
    from ops_warehouse.settings import get_settings
    from ops_warehouse.warehouse.queries import query, query_models

    def count(run, names: list[str]) -> int:
        if not names:
            return 0
        counts = " union all ".join(f"select count(*) as n from {t}" for t in names)
        return int(run(get_settings(), f"select sum(n) from ({counts}) as counts")[0][0] or 0)

    raw = [t for t in tables if t.startswith("raw_")]
    return count(query, raw) + count(query_models, [t for t in tables if t not in raw])


def task_validate(kw: dict) -> dict:
    from ops_warehouse.airflow.tasks import run_validation
    from ops_warehouse.pipeline.quality.gx_runner import load_suites

    t0 = time.monotonic()
    import great_expectations  # noqa: F401 - timed on its own: every task process pays it

    import_s = time.monotonic() - t0
    t0 = time.monotonic()
    summary = run_validation(kw["layers"], _context(kw))
    tables = sorted({s.table for layer in kw["layers"] for s in load_suites(layer) if s.table})
    return {
        "rows": _table_rows(tables),
        "gx_import_s": round(import_s, 2),
        "validate_s": round(time.monotonic() - t0, 2),
        "checks": summary.get("checks"),
        "completeness_s": summary.get("completeness_s"),
    }


def _raw_tables() -> list[str]:
    from ops_warehouse.pipeline.contracts import ENTITIES
    from ops_warehouse.settings import get_settings
    from ops_warehouse.warehouse.queries import query

    present = {
        f"{a}.{b}"
        for a, b in query(
            get_settings(),
            "select table_schema, table_name from information_schema.tables "
            "where table_schema like 'raw_%'",
        )
    }
    return [t for t in (f"raw_{e.source}.{e.name}" for e in ENTITIES) if t in present]


def task_dbt_build(kw: dict) -> dict:
    from ops_warehouse.airflow.tasks import run_dbt_build
    from ops_warehouse.settings import get_settings

    settings = get_settings()
    lake = _time_lake_sync() if settings.warehouse == "spark" else {}
    mode = run_dbt_build(_context(kw))
    timing = _dbt_timing(settings.home / "dbt" / "target" / "run_results.json")
    return {"rows": _table_rows(_raw_tables()), "full_build": mode["full_build"], **lake, **timing}


def _time_lake_sync() -> dict[str, Any]:
    """Time the build's own lake sync (``prepare_build``, which ``run_dbt_build`` calls
    before dbt): wrapped in this task process only. The dict it returns is filled when the
    sync has run: ``prepare_build_s`` (connections included), ``lake_sync_s`` (``sync_raw``),
    the tables and rows it wrote."""
    from ops_warehouse.warehouse import lake
    from ops_warehouse.warehouse.engines import Spark

    out: dict[str, Any] = {}
    sync_raw, prepare_build = lake.sync_raw, Spark.prepare_build

    def timed_sync(*args: Any, **kwargs: Any) -> dict[str, int]:
        t0 = time.monotonic()
        written = sync_raw(*args, **kwargs)
        out["lake_sync_s"] = round(time.monotonic() - t0, 2)
        out["lake_tables_written"] = len(written)
        out["lake_rows_written"] = sum(written.values())
        return written

    def timed_prepare(self: Spark) -> Any:
        t0 = time.monotonic()
        try:
            return prepare_build(self)
        finally:
            out["prepare_build_s"] = round(time.monotonic() - t0, 2)

    lake.sync_raw = timed_sync  # prepare_build imports it from the module when it runs
    Spark.prepare_build = timed_prepare
    return out


def _dbt_timing(path: Path) -> dict:
    """Where dbt's time went: models vs tests (sum of node execution times), and the top 8."""
    results = json.loads(path.read_text())
    nodes = results.get("results", [])
    by_kind: dict[str, float] = {}
    for n in nodes:
        kind = n["unique_id"].split(".")[0]
        by_kind[kind] = by_kind.get(kind, 0) + (n.get("execution_time") or 0)
    top = sorted(nodes, key=lambda n: -(n.get("execution_time") or 0))[:8]
    return {
        "dbt_elapsed_s": round(results.get("elapsed_time", 0), 2),
        "node_seconds_by_kind": {k: round(v, 2) for k, v in by_kind.items()},
        "nodes": {k: sum(1 for n in nodes if n["unique_id"].startswith(k + ".")) for k in by_kind},
        "slowest_nodes": {
            n["unique_id"].split(".", 2)[-1]: round(n["execution_time"], 2) for n in top
        },
    }


def task_publish(kw: dict) -> dict:
    from ops_warehouse.airflow.tasks import run_publish
    from ops_warehouse.pipeline.transform import MARTS
    from ops_warehouse.settings import get_settings
    from ops_warehouse.warehouse.engines import engine

    done = run_publish(_context(kw))
    with engine(get_settings()).models_reader() as con:
        marts = [f"{MARTS}.{t}" for t in con.tables(MARTS)]
    with engine(get_settings()).published() as con:  # what readers now see
        published = len(con.tables(MARTS))
    return {
        "rows": _table_rows(marts),
        "tables": len(marts),
        "published_tables": published,
        "republished": len(done["republished"]),
    }


def task_data_docs(kw: dict) -> dict:
    """The transform DAG's data_docs task: the Data Docs site brought up to date."""
    from ops_warehouse.airflow.tasks import run_data_docs

    return run_data_docs(_context(kw))


def task_report(kw: dict) -> dict:
    """The reports DAGs' tasks (``reports``: the weekly report, the daily digest; both if not
    said), if the reports module exists by now; otherwise say so."""
    try:
        from ops_warehouse.airflow.report_tasks import make_report
    except ImportError as exc:
        return {"available": False, "why": f"no reports entry point ({exc})"}
    from ops_warehouse.settings import get_settings

    ctx = {**_context(kw), "logical_date": datetime.fromisoformat(kw["end"])}
    out: dict[str, Any] = {"available": True}
    for kind in kw.get("reports", ("weekly", "daily")):
        t0 = time.monotonic()
        try:
            summary = make_report(kind, ctx)
        except Exception as exc:
            if get_settings().warehouse != "spark":
                raise
            # on Spark a failing report is recorded (the stage shows failed) and the run goes
            # on: the incremental day's build is what the Spark run is for
            import traceback

            traceback.print_exc()
            text = str(exc)
            text = text[text.find("errorMessage=") :] if "errorMessage=" in text else text
            out.update(available=False, failed=True, why=f"{kind}: {type(exc).__name__}: ")
            out["why"] += " ".join(text.split())[:300]
            return out
        out[f"{kind}_s"] = round(time.monotonic() - t0, 2)
        out[f"{kind}_steps_s"] = summary.get("seconds")
    return out


def task_floor(kw: dict) -> dict:
    """dbt's compiled SQL of every model, in dependency order, in one DuckDB connection."""
    import duckdb

    manifest = json.loads(Path(kw["manifest"]).read_text())
    models = {k: n for k, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    order: list[str] = []
    seen: set[str] = set()

    def visit(uid: str) -> None:
        if uid in seen or uid not in models:
            return
        seen.add(uid)
        for dep in models[uid]["depends_on"]["nodes"]:
            visit(dep)
        order.append(uid)

    for uid in sorted(models):
        visit(uid)
    con = duckdb.connect(kw["db"])
    con.execute("set TimeZone = 'UTC'")
    for schema in MODEL_SCHEMAS:
        con.execute(f"drop schema if exists {schema} cascade")
    t0 = time.monotonic()
    per_model = {}
    for uid in order:
        node = models[uid]
        sql = node.get("compiled_code")
        if not sql:
            raise RuntimeError(f"{uid} has no compiled code in {kw['manifest']}")
        kind = "view" if node["config"]["materialized"] == "view" else "table"
        con.execute(f"create schema if not exists {node['schema']}")
        m0 = time.monotonic()
        con.execute(f"create {kind} {node['relation_name']} as (\n{sql}\n)")
        per_model[node["name"]] = round(time.monotonic() - m0, 3)
    con.execute("checkpoint")
    models_s = time.monotonic() - t0
    raw = [
        r[0]
        for r in con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema like 'raw_%' and table_schema not like '%_staging' "
            "and table_name not like '_dlt%'"
        ).fetchall()
    ]
    rows = sum(con.execute(f"select count(*) from {t}").fetchone()[0] for t in raw)
    con.close()
    top = dict(sorted(per_model.items(), key=lambda x: -x[1])[:8])
    return {
        "rows": rows,
        "models": len(order),
        "models_s": round(models_s, 2),
        "slowest": top,
        "note": "post-hooks skipped: on a from-scratch build they delete nothing",
    }


def task_dbt_run(kw: dict) -> dict:
    """`dbt run` (models only, no tests) on the floor's copy: dbt's own cost per model."""
    import dataclasses

    from ops_warehouse.pipeline.transform import dbt_invoke
    from ops_warehouse.settings import get_settings

    s = dataclasses.replace(
        get_settings(), warehouse_path=Path(kw["db"]), home=Path(kw["target"]).parent
    )
    import duckdb

    with duckdb.connect(kw["db"]) as con:
        for schema in MODEL_SCHEMAS:
            con.execute(f"drop schema if exists {schema} cascade")
    dbt_invoke(["run"], settings=s, as_of=UNTIL)
    return {**_dbt_timing(s.home / "dbt" / "target" / "run_results.json")}


def task_noop(kw: dict) -> dict:
    """Nothing: the cost of a task process itself (fork, logging, settings)."""
    from ops_warehouse.settings import get_settings

    get_settings()
    return {}


def task_equivalence(kw: dict) -> dict:
    """`dbt run --full-refresh` on a copy of the warehouse after the incremental day, then
    every mart of the copy against the incremental day's (``kw["db"]`` is the copy; the
    original is the bench's working warehouse); and every published mart against the working
    one (a publish writes a changed mart's changed rows only)."""
    import dataclasses
    from datetime import date

    import duckdb

    from ops_warehouse.pipeline.transform import MARTS, dbt_invoke
    from ops_warehouse.settings import get_settings

    original = get_settings().warehouse_path
    s = dataclasses.replace(
        get_settings(), warehouse_path=Path(kw["db"]), home=Path(kw["db"]).parent
    )
    dbt_invoke(["run", "--full-refresh"], settings=s, as_of=date.fromisoformat(kw["as_of"]))
    con = duckdb.connect()
    con.execute(f"attach '{original}' as incremental (read_only)")
    con.execute(f"attach '{kw['db']}' as rebuilt (read_only)")
    con.execute(f"attach '{get_settings().published_path}' as published (read_only)")
    by_mart = {}
    for (table,) in con.execute(
        "select table_name from information_schema.tables "
        "where table_catalog = 'incremental' and table_schema = ? order by 1",
        [MARTS],
    ).fetchall():
        cols = ", ".join(
            f'"{c}"'
            for (c,) in con.execute(
                "select column_name from information_schema.columns where table_catalog = "
                "'incremental' and table_schema = ? and table_name = ? order by ordinal_position",
                [MARTS, table],
            ).fetchall()
            if not c.startswith("_")
        )
        a, b = f"incremental.{MARTS}.{table}", f"rebuilt.{MARTS}.{table}"
        only = [
            con.execute(
                f"select count(*) from (select {cols} from {x} except all select {cols} from {y})"
            ).fetchone()[0]
            for x, y in ((a, b), (b, a))
        ]
        rows = con.execute(f"select count(*) from {a}").fetchone()[0]
        by_mart[table] = {"rows": rows, "only_incremental": only[0], "only_rebuilt": only[1]}
        p = f"published.{MARTS}.{table}"
        by_mart[table]["published_differs"] = sum(
            con.execute(
                f"select count(*) from (select {cols} from {x} except all select {cols} from {y})"
            ).fetchone()[0]
            for x, y in ((a, p), (p, a))
        )
    con.close()
    return {
        "rows": sum(m["rows"] for m in by_mart.values()),
        "marts": len(by_mart),
        "differing_rows": sum(m["only_incremental"] + m["only_rebuilt"] for m in by_mart.values()),
        "published_differing_rows": sum(m["published_differs"] for m in by_mart.values()),
        "by_mart": by_mart,
    }


def task_gx_vs_sql(kw: dict) -> dict:
    """Every suite through the GX runner, then the same checks as plain SQL aggregates, as of
    ``kw["as_of"]`` (default: the full phase's day, as the floor's warehouse is)."""
    import dataclasses

    import duckdb

    from ops_warehouse.pipeline.quality import gx_runner
    from ops_warehouse.settings import get_settings

    s = dataclasses.replace(
        get_settings(), warehouse_path=Path(kw["db"]), home=Path(kw["db"]).parent / "gx_home"
    )
    t0 = time.monotonic()
    import great_expectations  # noqa: F401

    import_s = time.monotonic() - t0
    as_of = date.fromisoformat(kw["as_of"]) if "as_of" in kw else UNTIL
    gx_s, sql_s, checks, translated, gx_unexpected = {}, {}, {}, {}, {}
    sql_unexpected = {}
    for layer in gx_runner.LAYERS:
        t0 = time.monotonic()
        results = gx_runner.run_suites(s, layer, as_of, "bench_gx")
        gx_s[layer] = round(time.monotonic() - t0, 2)
        checks[layer] = len(results)
        gx_unexpected[layer] = sum(
            r.unexpected_count or 0 for r in results if r.check in _UNEXPECTED_TYPES
        )
    params = gx_runner.run_parameters(s, as_of)
    con = duckdb.connect(kw["db"], read_only=True)
    for layer in gx_runner.LAYERS:
        t0 = time.monotonic()
        n, unexpected = 0, 0
        for suite in gx_runner.load_suites(layer):
            got, u = _sql_checks(con, suite, s, params, as_of)
            n += got
            unexpected += u
        sql_s[layer] = round(time.monotonic() - t0, 2)
        translated[layer] = n
        sql_unexpected[layer] = unexpected
    con.close()
    return {
        "gx_import_s": round(import_s, 2),
        "gx_s": gx_s,
        "sql_s": sql_s,
        "gx_checks": checks,
        "sql_checks": translated,
        "unexpected_gx": gx_unexpected,
        "unexpected_sql": sql_unexpected,
    }


_UNEXPECTED_TYPES = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_between",
)


def _sql_checks(con, suite, settings, params: dict, as_of: date) -> tuple[int, int]:
    """One suite's checks as one aggregate query (plus one GROUP BY per compound key).
    Returns (checks computed, unexpected rows of the not-null / in-set / between checks)."""
    from ops_warehouse.pipeline.quality import gx_runner
    from ops_warehouse.warehouse.engines import Connection

    if suite.query:  # the query file as the runner fills it in, spelled for DuckDB
        source = f"({gx_runner._query_text(suite, settings, as_of, Connection(con, 'duckdb'))})"
    else:
        source = suite.table

    def q(c: str) -> str:
        return '"' + c.replace('"', '""') + '"'

    def value(v: Any) -> str:
        if isinstance(v, dict) and "$PARAMETER" in v:
            v = params.get(v["$PARAMETER"])
        if v is None:
            return "null"
        return f"'{v}'" if isinstance(v, str) else str(v)

    ops = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

    def scope(k: dict) -> str:
        """GX's row_condition (a comparison of a column with a value) as a filter term."""
        cond = k.get("row_condition")
        if not cond:
            return "true"
        return f"{q(cond['column']['name'])} {ops[cond['operator']]} {value(cond['parameter'])}"

    aggs, counted, extra = [], [], 0
    for e in suite.body.get("expectations", []):
        t, k = e["type"], e["kwargs"]
        if t == "expect_column_values_to_not_be_null":
            aggs.append(f"count(*) filter (where {q(k['column'])} is null)")
            counted.append(len(aggs) - 1)
        elif t == "expect_column_values_to_be_in_set":
            values = ", ".join(value(v) for v in k["value_set"])
            aggs.append(f"count(*) filter (where {q(k['column'])} not in ({values}))")
            counted.append(len(aggs) - 1)
        elif t == "expect_column_values_to_be_between":
            c, conds = q(k["column"]), []
            if k.get("min_value") is not None:
                conds.append(f"{c} <{'=' if k.get('strict_min') else ''} {value(k['min_value'])}")
            if k.get("max_value") is not None:
                conds.append(f"{c} >{'=' if k.get('strict_max') else ''} {value(k['max_value'])}")
            aggs.append(f"count(*) filter (where ({' or '.join(conds) or 'false'}) and {scope(k)})")
            counted.append(len(aggs) - 1)
        elif t == "expect_column_values_to_be_unique":
            aggs.append(f"count({q(k['column'])}) - count(distinct {q(k['column'])})")
        elif t == "expect_table_row_count_to_be_between":
            aggs.append("count(*)")
        elif t == "expect_column_max_to_be_between":
            aggs.append(f"max({q(k['column'])})")
        elif t == "expect_column_pair_values_a_to_be_greater_than_b":
            op = ">=" if k.get("or_equal") else ">"
            aggs.append(f"count(*) filter (where not ({q(k['column_A'])} {op} {q(k['column_B'])}))")
        elif t == "expect_compound_columns_to_be_unique":
            cols = ", ".join(q(c) for c in k["column_list"])
            con.execute(
                f"select count(*) from (select {cols} from {source} as b group by all "
                "having count(*) > 1)"
            ).fetchone()
            extra += 1
        elif t == "expect_table_columns_to_match_set":
            con.execute(f"select * from {source} as b limit 0").fetchall()
            extra += 1
    if not aggs:
        return extra, 0
    row = con.execute(f"select {', '.join(aggs)} from {source} as b").fetchone()
    return len(aggs) + extra, sum(row[i] or 0 for i in counted)


def task_airflow_init(kw: dict) -> dict:
    from ops_warehouse.airflow.environment import init_airflow
    from ops_warehouse.settings import get_settings

    s = get_settings()
    init_airflow(s, s.home / "logs" / "airflow-init.log")
    return {}


def task_airflow_dags(kw: dict) -> dict:
    """All four DAGs through `dag.test` in one process (ops_demo.airflow_run)."""
    from ops_demo.run import DAG_ORDER
    from ops_warehouse.airflow.environment import airflow_env
    from ops_warehouse.settings import get_settings

    s = get_settings()
    env = airflow_env(s)
    cmd = [sys.executable, "-m", "ops_demo.airflow_run", kw["logical_date"], *DAG_ORDER]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    process_s = time.monotonic() - t0
    log_path = s.home / "logs" / "airflow-dags.log"
    log_path.write_text(proc.stdout + proc.stderr)
    dags = {}
    for line in proc.stdout.splitlines():
        if line.startswith("OPS-DAG-RESULT"):
            _, dag_id, state, seconds = line.split()
            dags[dag_id] = {"state": state, "wall_s": float(seconds)}
    if proc.returncode != 0:
        raise RuntimeError(f"airflow_run failed ({proc.returncode}); see {log_path}")
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    tasks = db.execute(
        "select dag_id, task_id, state, start_date, end_date, duration from task_instance"
    ).fetchall()
    db.close()
    per_dag: dict[str, dict] = {}
    for dag_id, task_id, _state, _, _, duration in tasks:
        d = per_dag.setdefault(dag_id, {"tasks": {}, "tasks_s": 0.0})
        d["tasks"][task_id] = round(duration or 0, 2)
        d["tasks_s"] = round(d["tasks_s"] + (duration or 0), 2)
    for dag_id, d in dags.items():
        d.update(per_dag.get(dag_id, {}))
    dag_sum = sum(d["wall_s"] for d in dags.values())
    task_sum = sum(d.get("tasks_s", 0) for d in dags.values())
    return {
        "process_s": round(process_s, 2),
        "dags": dags,
        "dags_wall_s": round(dag_sum, 2),
        "tasks_s": round(task_sum, 2),
        "startup_and_parse_s": round(process_s - dag_sum, 2),
    }


def task_dag_parse(kw: dict) -> dict:
    """Parse time of each DAG file, each in a fresh process with Airflow already imported
    (what the dag-processor does), plus the import-everything cold start for comparison."""
    from ops_warehouse.airflow.environment import airflow_env
    from ops_warehouse.settings import get_settings

    env = airflow_env(get_settings())
    probe = (
        "import sys, time, json\n"
        "t0 = time.monotonic()\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "import airflow.sdk\n"
        "t1 = time.monotonic()\n"
        "bag = DagBag(dag_folder=sys.argv[1])\n"
        "t2 = time.monotonic()\n"
        "print('OPS-PARSE', json.dumps({'airflow_import_s': round(t1 - t0, 3), "
        "'parse_s': round(t2 - t1, 3), 'dags': len(bag.dags), 'errors': len(bag.import_errors), "
        "'stats_s': [round(getattr(s.duration, 'total_seconds', lambda: s.duration)(), 3) for s in bag.dagbag_stats]}))\n"
    )
    out = {}
    for path in sorted((REPO / "dags").glob("*.py")):
        proc = subprocess.run(
            [sys.executable, "-c", probe, str(path)], env=env, capture_output=True, text=True
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("OPS-PARSE")), None)
        out[path.name] = (
            json.loads(line.split(" ", 1)[1]) if line else {"error": proc.stderr[-500:]}
        )
    return {"files": out}


TASKS = {name[5:]: fn for name, fn in globals().items() if name.startswith("task_")}


# --- results and the summary --------------------------------------------------------------


def machine() -> dict[str, Any]:
    import psutil

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import duckdb

    return {
        "host": socket.gethostname(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "swap_gb": round(psutil.swap_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "duckdb": duckdb.__version__,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _git_state() -> dict[str, Any]:
    """The commit measured, and which tracked files differed from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    return {
        "head": git("rev-parse", "--short", "HEAD").strip(),
        "modified": git("diff", "--name-only", "HEAD").split(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def results_path() -> Path:
    return RESULTS_DIR / f"{date.today()}-{socket.gethostname()}.json"


def save(scale_result: dict, mach: dict, label: str | None = None) -> Path:
    """Merge one scale's result into today's file, keyed by scale (then the engine, if not
    DuckDB, and the label, if given: ``10 spark after fixes``)."""
    path = results_path()
    data = json.loads(path.read_text()) if path.exists() else {"scales": {}}
    for earlier in data["scales"].values():  # each run keeps the machine it ran on
        earlier.setdefault("machine", data.get("machine"))
    scale_result["machine"] = mach
    data["machine"] = mach
    engine = scale_result.get("engine", "duckdb")
    key = (
        f"{scale_result['scale']:g}"
        + (f" {engine}" if engine != "duckdb" else "")
        + (f" {label}" if label else "")
    )
    data["scales"][key] = scale_result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def _fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def markdown_table(data: dict) -> str:
    """The per-stage table of every scale in one results file, plus floor and ratios."""
    lines = []
    for key, r in sorted(data["scales"].items(), key=lambda kv: (float(kv[0].split()[0]), kv[0])):
        load = r.get("machine_during_run", {})
        m = r.get("machine") or data["machine"]
        lines += [
            f"**Scale {key}** on {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GiB RAM, "
            f"swap {m['swap_gb']} GiB; Python {m['python']}, DuckDB {m['duckdb']}"
            + _spark_heading(r)
            + " "
            f"({sum((r.get('source_rows') or {}).values()):,} source rows; "
            f"orders {r.get('source_rows', {}).get('orders', 0):,}, tickets "
            f"{r.get('source_rows', {}).get('tickets', 0):,}), run {r['started_at']}, "
            f"load average (1 min) during the run min {load.get('load1_min')} / mean "
            f"{load.get('load1_mean')} / max {load.get('load1_max')}, least available memory "
            f"{load.get('mem_available_min_gb')} GiB, swap used {load.get('swap_used_max_gb')} GiB."
            + (
                " Ingest ran with the fx-rate sweep rule that was then proposed and is now "
                "committed; the rule it replaced is measured alone as `sweep_as_committed`."
                if r.get("proposed_sweep")
                else ""
            )
            + (f" **Stopped:** {r['error']}" if r.get("error") else ""),
            "",
            "| phase | stage | wall s | CPU s | peak RSS MB | rows | rows/s | notes |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        if "generate" in r:
            lines.append(_row("setup", r["generate"]))
        for phase in ("full", "incremental"):
            if phase not in r:
                continue
            for st in r[phase]["stages"]:
                lines.append(_row(phase, st))
            t = r[phase]["total"]
            if not t:
                continue
            jvm = (
                f"Spark JVMs {t['cluster_cpu_s']:.1f} s CPU, {t['cluster_rss_peak_mb']:,} MB peak"
                if "cluster_cpu_s" in t
                else ""
            )
            lines.append(
                f"| {phase} | **pipeline total** | **{t['wall_s']:.1f}** | "
                f"{t['cpu_s']:.1f} | {t['peak_rss_mb']:,.0f} | | | {jvm} |"
            )
            if phase == "full" and "advance" in r:
                lines.append(_row("setup", r["advance"]))
        b = r.get("baselines")
        if b:
            for name in (
                "floor",
                "floor_warm",
                "dbt_run",
                "gx_vs_sql",
                "sweep",
                "sweep_as_committed",
            ):
                if name in b:
                    lines.append(_row("baseline", b[name]))
        a = r.get("airflow")
        if a:
            lines.append(_row("airflow", a["init"]))
            lines.append(_row("airflow", a["dags"]))
            lines.append(_row("airflow", a["parse"]))
        lines += ["", *ratios(r), *spark_lines(r), ""]
    return "\n".join(lines)


def _spark_heading(r: dict) -> str:
    sp = r.get("spark")
    if r.get("engine") != "spark" or not sp or "workers" not in sp:
        return ""
    return (
        f"; engine Spark {sp['version']} ({sp['workers']} workers × {sp['cores_per_worker']} "
        f"core, {sp['worker_memory']} each, executors {sp['executor_memory_mb']} MB; every "
        "build a full one)"
    )


def spark_lines(r: dict) -> list[str]:
    """The Spark cluster's configuration and its JVMs' peak memory, as summary lines."""
    sp = r.get("spark")
    if r.get("engine") != "spark" or not sp:
        return []
    out = []
    if "workers" in sp:
        out.append(
            f"- Spark {sp['version']}: {sp['workers']} workers × {sp['cores_per_worker']} core, "
            f"worker memory {sp['worker_memory']}, executor memory {sp['executor_memory_mb']} MB; "
            f"the cluster started in {sp['start_s']} s (not in the stages)"
        )
    if sp.get("jvm_peak_by_role"):
        roles = ", ".join(
            f"{role} {v['peak_mb']:,} MB"
            + (f" (largest of {v['processes']})" if v["processes"] > 1 else "")
            + (f" -Xmx{v['xmx']}" if v.get("xmx") else "")
            for role, v in sp["jvm_peak_by_role"].items()
        )
        each = ", ".join(f"{n} {v:,}" for n, v in sp["jvm_peak_mb"].items())
        out.append(
            f"- Spark JVMs' peak RSS by role: {roles}; all JVMs at once "
            f"{sp['jvm_total_peak_mb']:,} MB; by process (MB): {each}; JVM CPU over the scale "
            f"{sp['jvm_cpu_s']} s"
        )
    for phase in ("full", "incremental"):
        st = {s["name"]: s for s in (r.get(phase) or {}).get("stages", [])}
        d = (st.get("dbt_build") or {}).get("detail") or {}
        if "lake_sync_s" in d:
            out.append(
                f"- {phase}: lake sync {d['lake_sync_s']} s ({d['lake_tables_written']} raw "
                f"tables, {d['lake_rows_written']:,} rows to Parquet; prepare_build "
                f"{d.get('prepare_build_s')} s) of `dbt_build`'s {st['dbt_build']['wall_s']} s; "
                f"dbt {d.get('dbt_elapsed_s')} s, "
                + ("a full build" if d.get("full_build") else "incremental")
            )
    return out


def _row(phase: str, st: dict) -> str:
    d = st.get("detail") or {}
    notes = []
    if "gx_import_s" in d and "validate_s" in d:
        notes.append(f"GX import {d['gx_import_s']} s, checks {d.get('checks')}")
    if "node_seconds_by_kind" in d:
        notes.append(
            "node s: " + ", ".join(f"{k} {v}" for k, v in d["node_seconds_by_kind"].items())
        )
    if "together" in d:
        notes.append(f"together: {d['together']['group']}, {d['together']['wall_s']} s wall")
    if st["name"].startswith("ingest") and d.get("server_cpu_s"):
        notes.append(f"API server CPU {d['server_cpu_s']} s")
    if d.get("failed"):
        notes.append(f"**failed** ({d['why']})")
    elif d.get("available") is False:
        notes.append(f"report: not available ({d['why']})")
    if "lake_sync_s" in d:
        notes.append(f"lake sync {d['lake_sync_s']} s ({d['lake_tables_written']} tables)")
    if "cluster_cpu_s" in d:
        notes.append(f"Spark JVMs {d['cluster_cpu_s']} s CPU, {d['cluster_rss_peak_mb']:,} MB peak")
    if "dags_wall_s" in d:
        notes.append(
            f"DAGs {d['dags_wall_s']} s, tasks {d['tasks_s']} s, start-up+parse "
            f"{d['startup_and_parse_s']} s"
        )
    rate = st["rows"] / st["wall_s"] if st.get("rows") and st.get("wall_s") else None
    rows = f"{st['rows']:,}" if st.get("rows") is not None else ""
    return (
        f"| {phase} | {st['name']} | {st['wall_s']:.1f} | {st['cpu_s']:.1f} | "
        f"{st['peak_rss_mb']:,.0f} | {rows} | {_fmt(rate, 0) if rate else ''} | "
        f"{'; '.join(notes)} |"
    )


def ratios(r: dict) -> list[str]:
    out: list[str] = []
    if "full" not in r:
        return out
    full = {s["name"]: s for s in r["full"]["stages"]}
    b = r.get("baselines")
    if b and "gx_vs_sql" in b:
        fl = b.get("floor_warm") or b["floor"]
        floor, fcpu = fl["wall_s"], fl["cpu_s"]
        out.append(
            f"- floor (compiled SQL of every model, one DuckDB connection): {floor:.1f} s "
            f"wall, {fcpu:.1f} s CPU ({fl['detail'].get('models_s')} s in the "
            "statements)" + (f"; {fl['detail']['why']}" if "why" in fl["detail"] else "")
        )
        out.append(
            f"- wall (CPU) ratios: `dbt build` / floor {full['dbt_build']['wall_s'] / floor:.1f}× "
            f"({full['dbt_build']['cpu_s'] / fcpu:.1f}×); `dbt run` (models only) / floor "
            f"{b['dbt_run']['wall_s'] / floor:.1f}× ({b['dbt_run']['cpu_s'] / fcpu:.1f}×); "
            f"whole pipeline / floor {r['full']['total']['wall_s'] / floor:.1f}× "
            f"({r['full']['total']['cpu_s'] / fcpu:.1f}×)"
        )
        g = b["gx_vs_sql"]["detail"]
        gx, sql = sum(g["gx_s"].values()), sum(g["sql_s"].values())
        out.append(
            f"- GX suites (in-process, after a {g['gx_import_s']} s import): {gx:.1f} s for "
            f"{sum(g['gx_checks'].values())} checks; the same checks as SQL aggregates: "
            f"{sql:.2f} s ({sum(g['sql_checks'].values())} checks) → GX / SQL "
            f"{gx / sql if sql else float('nan'):.0f}×; unexpected rows (not-null, in-set, "
            f"between) GX {sum(g['unexpected_gx'].values())} vs SQL "
            f"{sum(g['unexpected_sql'].values())}"
        )
    for phase in ("full", "incremental"):
        if phase not in r:
            continue
        st = {s["name"]: s for s in r[phase]["stages"]}
        if "validate_raw" not in st or "validate_marts" not in st:
            continue  # the phase stopped before its checks ran
        val = st["validate_raw"]["wall_s"] + st["validate_marts"]["wall_s"]
        vcpu = st["validate_raw"]["cpu_s"] + st["validate_marts"]["cpu_s"]
        total, tcpu = r[phase]["total"]["wall_s"], r[phase]["total"]["cpu_s"]
        out.append(
            f"- {phase}: GX validation {val:.1f} s = {100 * val / total:.0f} % of the "
            f"pipeline's {total:.1f} s wall ({vcpu:.1f} s = {100 * vcpu / tcpu:.0f} % of "
            f"its {tcpu:.1f} s CPU)"
        )
    eq = (r.get("equivalence") or {}).get("detail") or {}
    if "differing_rows" in eq:
        out.append(
            f"- incremental day vs a full rebuild of the same raw: {eq['differing_rows']} "
            f"differing rows over {eq['marts']} marts ({r['equivalence']['rows'] or 0:,} rows)"
        )
    if "published_differing_rows" in eq:
        out.append(
            f"- published marts vs the working ones after the last day: "
            f"{eq['published_differing_rows']} differing rows"
        )
    a = r.get("airflow")
    if a:
        d = a["dags"]["detail"]
        inc = r["incremental"]["total"]["wall_s"]
        out.append(
            f"- Airflow, incremental day: `dag.test` process {d['process_s']} s (DAGs "
            f"{d['dags_wall_s']} s, Airflow's task durations {d['tasks_s']} s, start-up + "
            f"DagBag {d['startup_and_parse_s']} s) vs. the same stages without Airflow "
            f"{inc:.1f} s → {d['process_s'] / inc:.2f}×; DAG wall / task sum "
            f"{d['dags_wall_s'] / d['tasks_s']:.2f}×"
            if d.get("tasks_s")
            else ""
        )
        files = a["parse"]["detail"]["files"]
        out.append(
            "- DAG file parse (fresh process, Airflow pre-imported): "
            + ", ".join(f"{f} {v.get('parse_s', '?')} s" for f, v in files.items())
        )
    return out


def write_benchmarks_md(path_json: Path) -> None:
    data = json.loads(path_json.read_text())
    shown = path_json.relative_to(REPO) if path_json.is_relative_to(REPO) else path_json
    table = (
        f"{TABLE_BEGIN}\n<!-- written by bench/bench.py from "
        f"{shown} -->\n\n{markdown_table(data)}\n{TABLE_END}"
    )
    text = (
        BENCHMARKS_MD.read_text()
        if BENCHMARKS_MD.exists()
        else (
            "# Benchmarks\n\n`make bench` (`python bench/bench.py --scale 1,10,50`).\n\n"
            f"{TABLE_BEGIN}\n{TABLE_END}\n"
        )
    )
    if TABLE_BEGIN in text:
        text = re.sub(
            re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END),
            lambda _m: table,
            text,
            flags=re.S,
        )
    else:
        text += "\n" + table + "\n"
    BENCHMARKS_MD.write_text(text)


def days_lines(r: dict) -> list[str]:
    """One line per incremental day (with --days): its wall and its stages' walls."""
    days = [{"day": 1, **r["incremental"]}] if r.get("later_days") else []
    lines = []
    for day in days + r.get("later_days", []):
        stages = ", ".join(f"{s['name']} {s['wall_s']:.1f}" for s in day.get("stages", []))
        lines.append(f"- incremental day {day['day']}: {day['total']['wall_s']:.1f} s ({stages})")
    return lines


def summary(console, r: dict, path: Path) -> None:
    from rich.table import Table

    table = Table(
        "phase",
        "stage",
        "wall s",
        "CPU s",
        "peak MB",
        "rows",
        "rows/s",
        title=f"Scale {r['scale']:g}: {sum((r.get('source_rows') or {}).values()):,} source rows",
    )
    for phase in ("full", "incremental"):
        for st in r.get(phase, {}).get("stages", []):
            rate = st.get("rows_per_s")
            table.add_row(
                phase,
                st["name"],
                f"{st['wall_s']:.1f}",
                f"{st['cpu_s']:.1f}",
                f"{st['peak_rss_mb']:,.0f}",
                f"{st['rows']:,}" if st.get("rows") is not None else "",
                f"{rate:,.0f}" if rate else "",
            )
        if r.get(phase, {}).get("total"):
            t = r[phase]["total"]
            table.add_row(
                phase,
                "[b]total[/]",
                f"[b]{t['wall_s']:.1f}[/]",
                f"{t['cpu_s']:.1f}",
                f"{t['peak_rss_mb']:,.0f}",
                "",
                "",
            )
    console.print(table)
    for line in [*ratios(r), *spark_lines(r), *days_lines(r)]:
        if line:
            console.print(line)
    console.print(
        f"Results: {path} (and the table in {BENCHMARKS_MD}); work files and logs: {r['root']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="1,10,50", help="scales, comma separated")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("OPS_BENCH_ROOT", str(DEFAULT_ROOT))),
        help="where worlds and warehouses go (default: var/bench/pipeline, git-ignored)",
    )
    parser.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default="duckdb",
        help="the warehouse engine (spark: a local cluster per scale; no baselines, "
        "equivalence or Airflow)",
    )
    parser.add_argument(
        "--spark-worker-memory",
        default="2g",
        help="with --engine spark: each of the two workers' (and executors') memory (2g)",
    )
    parser.add_argument("--no-airflow", action="store_true", help="skip the Airflow run")
    parser.add_argument("--no-baselines", action="store_true", help="skip floor and GX vs SQL")
    parser.add_argument("--keep", action="store_true", help="keep each scale's work folder")
    parser.add_argument(
        "--days",
        type=int,
        default=1,
        help="incremental days in a row after the full run (default 1); each later day's "
        "stages are recorded, and the equivalence is checked after the last",
    )
    parser.add_argument(
        "--label",
        help="keep this run apart from others of the same scale "
        "in today's results file (e.g. 'after fixes')",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        help="write the results file and a BENCHMARKS.md there instead of "
        "bench/results/ and the repository's BENCHMARKS.md",
    )
    parser.add_argument(
        "--rewrite-md",
        action="store_true",
        help="only rewrite BENCHMARKS.md's table from today's results file",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kw", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.results_dir is not None:
        global RESULTS_DIR, BENCHMARKS_MD
        RESULTS_DIR, BENCHMARKS_MD = args.results_dir, args.results_dir / "BENCHMARKS.md"

    if args.worker:
        return worker_main()
    if args.task:  # a child process running one stage
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        out = TASKS[args.task](json.loads(args.kw))
        args.out.write_text(json.dumps(out, default=str))
        return 0

    if args.rewrite_md:
        write_benchmarks_md(results_path())
        return 0

    from rich.console import Console

    console = Console()
    scales = [float(s) for s in args.scale.split(",") if s.strip()]
    mach = machine()
    console.print(
        f"{mach['cpu_model']}, {mach['cores']} cores, {mach['ram_gb']} GiB RAM; "
        f"load average {mach['load_avg_at_start']}"
    )
    spark = None
    if args.engine == "spark":
        from ops_warehouse.warehouse.spark_cluster import SparkClusterError, memory_mb

        try:
            memory_mb(args.spark_worker_memory, "--spark-worker-memory")
        except SparkClusterError as exc:
            parser.error(str(exc))
        spark = SparkOptions(worker_memory=args.spark_worker_memory)
        # a SIGTERM ends the run through run_scale's finally: the cluster is stopped too
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for scale in scales:
        root = args.root / (f"scale-{scale:g}" + ("-spark" if spark else ""))
        r = run_scale(
            scale,
            root,
            console,
            airflow=not args.no_airflow,
            baselines=not args.no_baselines,
            spark=spark,
            days=args.days,
        )
        path = save(r, mach, args.label)
        write_benchmarks_md(path)
        summary(console, r, path)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        if "error" in r:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
