"""The production path on this machine, without Docker: Airflow 3 with PostgreSQL metadata,
the CeleryExecutor on Redis and two Celery workers, the warehouse and the shop database on
PostgreSQL (OPS_WAREHOUSE=postgres). The ingest DAGs are triggered through the REST API
(the official Python client); the asset-triggered transform (and reports, when that DAG
exists) must succeed although one worker is SIGKILLed in the middle of a task; the
published PostgreSQL marts must equal DuckDB marts built without Airflow from the same
world. Every process started here is killed at the end, and the scratch databases and the
Redis database are emptied, whatever happens."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
import pytest
import sqlalchemy as sa

from ops_warehouse.airflow.dag_factory import WRITER_POOL
from ops_warehouse.airflow.environment import airflow_bin, airflow_env
from ops_warehouse.settings import Settings
from tests.conftest import drop_pg_database, load_and_build, make_settings, scratch_pg_database
from tests.helpers import MART_TABLES, frames_differ, free_port, read_table

pytestmark = [pytest.mark.e2e, pytest.mark.deploy]

SCALE = 0.05
HISTORY_DAYS = 150
INGEST = ("ingest_marketing", "ingest_sales", "ingest_support")
REPORT_DAGS = ("daily_digest", "weekly_report")
KILLED_TASK = "dbt_build"
REDIS = "redis://127.0.0.1:6379"
PG = "postgresql://postgres@127.0.0.1:5432"


# The test runs for about ten minutes. A day taken this close to midnight (UTC) would be
# overtaken mid-test: the scheduler adds its own run of the day that ends at midnight.
MIDNIGHT_MARGIN = timedelta(minutes=20)


def latest_complete_day() -> date:
    """The day a daily DAG's newest scheduled run covers now: manual runs use the same
    interval, so the scheduler does not add a run of its own when the DAGs are unpaused.
    Within ``MIDNIGHT_MARGIN`` of midnight, after midnight: the day stays the newest one
    for the whole test."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    if midnight - now < MIDNIGHT_MARGIN:
        time.sleep((midnight - now).total_seconds() + 5)
    return datetime.now(UTC).date() - timedelta(days=1)


@dataclass
class Processes:
    """Child processes, each the leader of its own process group."""

    logs: Path
    started: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("w") as out:
            proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL a process, its group and every descendant (the task supervisor puts the
        task in a process group of its own): what a dead machine or container does."""
        proc = self.started[name]
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        groups = {proc.pid}
        for member in family:
            try:
                groups.add(os.getpgid(member.pid))
            except ProcessLookupError:
                pass
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for member in family:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=30)

    def family_pids(self, name: str) -> set[int]:
        proc = self.started[name]
        try:
            root = psutil.Process(proc.pid)
            return {proc.pid, *(c.pid for c in root.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def kill_all(self) -> None:
        for name in list(self.started):
            self.kill(name)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    processes: Processes
    api_url: str
    day: date


def ops_env(s: Settings) -> dict[str, str]:
    """The settings as the environment every Airflow process (and task) reads them from."""
    return {
        "OPS_HOME": str(s.home),
        "OPS_WAREHOUSE": "postgres",
        "OPS_DBT_TARGET": "postgres",
        "OPS_POSTGRES_URL": s.postgres_url,
        "OPS_PUBLISHED_POSTGRES_URL": s.published_postgres_url,
        "OPS_SHOP_DB_URL": s.shop_db_url,
        "OPS_MARKETING_API_URL": s.marketing_api_url,
        "OPS_MARKETING_API_TOKEN": s.marketing_api_token,
        "OPS_SUPPORT_API_URL": s.support_api_url,
        "OPS_SUPPORT_API_TOKEN": s.support_api_token,
        "OPS_LANDING_DIR": str(s.landing_dir),
        "OPS_DEMO_DIR": str(s.demo_dir),
        "OPS_DLT_DIR": str(s.dlt_dir),
        "OPS_REPORTS_DIR": str(s.reports_dir),
        "OPS_PAGE_SIZE": str(s.page_size),
        "OPS_HTTP_TIMEOUT_S": "10",
    }


def copy_shop_to_postgres(sqlite_url: str, pg_url: str) -> None:
    """The demo shop database as a PostgreSQL shop (the sales source on PostgreSQL)."""
    from ops_warehouse.pipeline.shop_schema import metadata

    source = sa.create_engine(sqlite_url)
    target = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    metadata.create_all(target)
    with source.connect() as src, target.begin() as dst:
        for table in metadata.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
            if rows:
                dst.execute(table.insert(), rows)
    source.dispose()
    target.dispose()


def wait_for(what: str, check, timeout: float, processes: Processes, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for name, proc in processes.started.items():
            if proc.poll() is not None and name != "worker-killed":
                raise AssertionError(
                    f"{name} exited while waiting for {what}:\n" + processes.log(name)
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def api_token(api_url: str) -> str | None:
    """A JWT from the simple auth manager, which grants one without credentials in
    all-admins mode (GET /auth/token)."""
    try:
        with urllib.request.urlopen(f"{api_url}/auth/token", timeout=5) as response:
            return json.loads(response.read())["access_token"]
    except OSError:
        return None


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, date]:
    from ops_demo import world as demo_world

    day = latest_complete_day()
    path = tmp_path_factory.mktemp("celery_world")
    demo_world.generate(path, seed=23, scale=SCALE, until=day, history_days=HISTORY_DAYS)
    return path, day


@pytest.fixture(scope="module")
def world_server(world):
    from ops_demo.server import DemoServer

    with DemoServer(world[0], marketing_token="m-token", support_token="s-token") as srv:
        yield srv


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, world, world_server) -> Settings:
    """The same world loaded and built on DuckDB, in this process, without Airflow."""
    path, day = world
    settings = make_settings(tmp_path_factory.mktemp("celery_duckdb"), path, world_server.url)
    load_and_build(settings, day)
    return settings


@pytest.fixture(scope="module")
def stack(tmp_path_factory, world, world_server) -> Iterator[Stack]:
    path, day = world
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    names = {k: f"ops_celery_{k}_{tag}" for k in ("airflow", "warehouse", "shop")}
    published = f"{names['warehouse']}_published"
    redis_db = 8 + os.getpid() % 8
    home = tmp_path_factory.mktemp("celery_home")
    logs = home / "process-logs"
    logs.mkdir()
    processes = Processes(logs)
    import redis

    broker = redis.Redis.from_url(f"{REDIS}/{redis_db}")
    try:
        for name in names.values():
            scratch_pg_database(name)
        copy_shop_to_postgres(f"sqlite:///{path / 'shop.sqlite'}", f"{PG}/{names['shop']}")
        settings = replace(
            make_settings(home, path, world_server.url),
            warehouse="postgres",
            dbt_target="postgres",
            postgres_url=f"{PG}/{names['warehouse']}",
            published_postgres_url=f"{PG}/{published}",
            shop_db_url=f"{PG}/{names['shop']}",
        )
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        metadata = f"postgresql+psycopg://postgres@127.0.0.1:5432/{names['airflow']}"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPS_", "AIRFLOW_", "AIRFLOW__"))
        }
        env = airflow_env(replace(settings, home=home))  # AIRFLOW_HOME, folders, PYTHONPATH
        env = {
            **base,
            **{k: v for k, v in env.items() if k.startswith("AIRFLOW")},
            "PYTHONPATH": env["PYTHONPATH"],
            **ops_env(settings),
        }
        env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
                # Airflow derives asyncpg for its async engine otherwise (not installed)
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata.replace(
                    "+psycopg://", "+psycopg_async://"
                ),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
                "AIRFLOW__CORE__PARALLELISM": "4",
                # workers reach the Task Execution API on the api-server's port, or every task fails
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
                "AIRFLOW__API__BASE_URL": api_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # paused until the manual runs exist, so the scheduler adds none of its own
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                # a killed task is noticed within seconds and retried at once (the DAGs' own
                # retry delay is minutes; this global cap keeps the test short)
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "25",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
                "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "3",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            }
        )
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        broker.flushdb()
        for args in (
            ["db", "migrate"],
            ["pools", "set", WRITER_POOL, "1", "One writer of the warehouse"],
        ):
            result = subprocess.run(
                [airflow_bin(), *args], env=env, capture_output=True, text=True, timeout=300
            )
            assert result.returncode == 0, f"airflow {args[0]}: {result.stderr[-3000:]}"
        airflow = airflow_bin()
        processes.start(
            "api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)], env
        )
        processes.start("scheduler", [airflow, "scheduler"], env)
        processes.start("dag-processor", [airflow, "dag-processor"], env)
        for n in (1, 2):
            processes.start(
                f"worker-{n}",
                [
                    airflow,
                    "celery",
                    "worker",
                    "--concurrency",
                    "1",
                    "--celery-hostname",
                    f"w{n}@%h",
                    "--skip-serve-logs",
                ],
                env,
            )
        yield Stack(settings, env, processes, api_url, day)
    finally:
        processes.kill_all()
        broker.flushdb()
        broker.close()
        for name in (*names.values(), published):
            drop_pg_database(name)


def client(stack: Stack):
    import airflow_client.client as ac

    token = wait_for("the API server", lambda: api_token(stack.api_url), 180, stack.processes)
    return ac.ApiClient(ac.Configuration(host=stack.api_url, access_token=token))


def dag_runs(api, dag_id: str) -> list:
    from airflow_client.client import DagRunApi

    return DagRunApi(api).get_dag_runs(dag_id, limit=20).dag_runs


def worker_running(stack: Stack, pid: int) -> str | None:
    for name in ("worker-1", "worker-2"):
        if pid in stack.processes.family_pids(name):
            return name
    return None


def test_pipeline_on_celery_survives_a_killed_worker(undisturbed, stack):
    from airflow_client.client import DAGApi, DAGPatchBody, DagRunApi, TaskInstanceApi
    from airflow_client.client.exceptions import NotFoundException
    from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

    started = time.monotonic()
    api = client(stack)
    dags, runs, tis = DAGApi(api), DagRunApi(api), TaskInstanceApi(api)

    def parsed():
        try:
            return all(dags.get_dag(d) for d in (*INGEST, "transform"))
        except NotFoundException:
            return False

    wait_for("the DAGs to be parsed", parsed, 180, stack.processes, interval=2)
    wait_for(
        "both Celery workers",
        lambda: all(" ready." in stack.processes.log(f"worker-{n}") for n in (1, 2)),
        180,
        stack.processes,
    )
    reports = [d.dag_id for d in dags.get_dags(limit=100).dags if d.dag_id in REPORT_DAGS]

    start = datetime(stack.day.year, stack.day.month, stack.day.day, tzinfo=UTC)
    for dag_id in INGEST:
        runs.trigger_dag_run(
            dag_id,
            TriggerDAGRunPostBody(
                dag_run_id=f"e2e__{stack.day}",
                logical_date=start,
                data_interval_start=start,
                data_interval_end=start + timedelta(days=1),
            ),
        )
    for dag_id in (*INGEST, "transform", *reports):
        dags.patch_dag(dag_id, DAGPatchBody(is_paused=False))

    # every load succeeds, each through a Celery worker
    for dag_id in INGEST:
        run = wait_for(
            f"{dag_id} to finish",
            lambda d=dag_id: next(
                (r for r in dag_runs(api, d) if r.state in ("success", "failed")), None
            ),
            300,
            stack.processes,
            interval=2,
        )
        assert run.state == "success", f"{dag_id}: {run.state}\n" + stack.processes.log("scheduler")
        assert [r.dag_run_id for r in dag_runs(api, dag_id)] == [f"e2e__{stack.day}"], (
            "the scheduler added a run of its own"
        )

    # transform starts from the three raw assets; kill the worker running its dbt build
    transform = wait_for(
        "the asset-triggered transform run",
        lambda: next(iter(dag_runs(api, "transform")), None),
        120,
        stack.processes,
        interval=2,
    )

    def dbt_running():
        ti = tis.get_task_instance("transform", transform.dag_run_id, KILLED_TASK)
        return ti if ti.state == "running" and ti.pid else None

    ti = wait_for("dbt_build to run", dbt_running, 300, stack.processes, interval=1)
    time.sleep(8)  # well into the build
    victim = worker_running(stack, ti.pid)
    assert victim, f"task pid {ti.pid} belongs to no worker"
    stack.processes.started["worker-killed"] = stack.processes.started.pop(victim)
    stack.processes.kill("worker-killed")
    killed_at = time.monotonic()

    final = wait_for(
        "transform to finish",
        lambda: next(
            (r for r in dag_runs(api, "transform") if r.state in ("success", "failed")), None
        ),
        420,
        stack.processes,
        interval=3,
    )
    assert final.state == "success", stack.processes.log("scheduler")
    tries = tis.get_task_instance_tries("transform", final.dag_run_id, KILLED_TASK)
    states = [(t.try_number, t.state) for t in tries.task_instances]
    assert len(states) >= 2 and states[-1][1] == "success", states
    assert states[0][1] in ("failed", "up_for_retry"), f"the killed try: {states}"
    survivor = "worker-2" if victim == "worker-1" else "worker-1"
    retried = tis.get_task_instance("transform", final.dag_run_id, KILLED_TASK)
    assert retried.try_number >= 2
    print(
        f"killed {victim} in {KILLED_TASK}; retried on {survivor}; transform succeeded "
        f"{time.monotonic() - killed_at:.0f} s after the kill"
    )

    if "daily_digest" in reports:
        # the run the publish triggered
        digest = wait_for(
            "the asset-triggered digest run to finish",
            lambda: next(
                (
                    r
                    for r in dag_runs(api, "daily_digest")
                    if getattr(r.run_type, "value", r.run_type) == "asset_triggered"
                    and r.state in ("success", "failed")
                ),
                None,
            ),
            300,
            stack.processes,
            interval=3,
        )
        assert digest.state == "success", f"daily_digest run {digest.dag_run_id} failed"

    # the published marts equal DuckDB marts built from the same world without Airflow
    published = replace(stack.settings, postgres_url=stack.settings.published_postgres_url)
    for table in MART_TABLES:
        difference = frames_differ(
            read_table(undisturbed, "marts", table), read_table(published, "marts", table)
        )
        assert difference is None, f"marts.{table}: {difference}"
    with psycopg.connect(stack.settings.published_postgres_url) as con:
        status = con.execute(
            "select status from audit.pipeline_runs where dag_id = 'transform'"
        ).fetchall()
    assert status == [("published",)]
    print(f"Celery e2e: {time.monotonic() - started:.0f} s after the stack started")
