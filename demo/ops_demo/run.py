"""`make demo`: the whole pipeline on the demo world, run through Airflow itself."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ops_demo import with_demo_tokens
from ops_demo.server import LISTENING
from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline.contracts import ENTITIES
from ops_warehouse.processes import Children, port_holder
from ops_warehouse.settings import Settings, get_settings

DAG_ORDER = (
    "ingest_marketing",
    "ingest_sales",
    "ingest_support",
    "transform",
    "daily_digest",
    "weekly_report",
)
# the folder that holds ops_demo (demo/ in the repository)
DEMO_ROOT = Path(__file__).resolve().parents[1]


def demo_airflow_env(s: Settings) -> dict[str, str]:
    """The product's Airflow environment (``airflow_env``: ``src/`` on PYTHONPATH) plus what
    the demo's Airflow processes need: the demo's tokens, and the folder holding ``ops_demo``
    on PYTHONPATH too (``ops_demo.airflow_run`` runs there)."""
    from ops_warehouse.airflow.environment import airflow_env

    env = with_demo_tokens(airflow_env(s))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(DEMO_ROOT)) if p)
    return env


def generate_world(*, seed: int, scale: float, until: date, console: Console):
    from ops_demo import world

    s = get_settings()
    started = time.monotonic()
    with console.status(
        f"generating the demo world (seed {seed}, scale {scale}, until {until}) …"
    ) as st:
        info = world.generate(
            s.demo_dir,
            seed=seed,
            scale=scale,
            until=until,
            progress=lambda msg: st.update(f"generating the demo world: {msg}"),
        )
    console.print(
        f"Demo world generated in {time.monotonic() - started:.1f} s at {s.demo_dir} "
        f"({sum(info.row_counts.values()):,} rows, {info.start} … {info.until})."
    )
    return info


def advance_world(days: int, *, console: Console):
    from ops_demo import world

    s = get_settings()
    with console.status(f"moving the demo world {days} day(s) forward …") as st:
        info = world.advance(
            s.demo_dir, days=days, progress=lambda msg: st.update(f"advancing: {msg}")
        )
    console.print(f"Demo world now ends on {info.until} ({sum(info.row_counts.values()):,} rows).")
    return info


def ensure_world(s: Settings, console: Console):
    """Keep an existing world with the same seed and scale (it may have been advanced)."""
    from ops_demo import world

    if (s.demo_dir / "world.json").exists():
        info = world.read_info(s.demo_dir)
        if info.seed == s.demo_seed and info.scale == s.demo_scale:
            console.print(f"Using the demo world at {s.demo_dir} (until {info.until}).")
            return info
    return generate_world(seed=s.demo_seed, scale=s.demo_scale, until=s.demo_until, console=console)


@contextmanager
def demo_server(s: Settings, log_path: Path) -> Iterator[str]:
    """The demo APIs in a child process, for the duration of the block.

    A port some other process listens on stops this at once: the loads would read that
    other server (another ``ops-demo``'s), and fail when it stops."""
    holder = port_holder("127.0.0.1", s.demo_port)
    if holder:
        raise OpsWarehouseError(
            f"port {s.demo_port} of the demo APIs is taken by {holder}; stop it, or set "
            "OPS_DEMO_PORT to a free port"
        )
    url = f"http://127.0.0.1:{s.demo_port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.touch()
    start = log_path.stat().st_size
    with Children() as children:
        with log_path.open("a") as log:
            proc = children.start(
                "demo server",
                [sys.executable, "-m", "ops_demo.server"]
                + ["--dir", str(s.demo_dir), "--port", str(s.demo_port)],
                env=with_demo_tokens(dict(os.environ)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        # the server says so once it listens; an answer on the port could be someone else's
        while LISTENING not in _read_from(log_path, start):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise OpsWarehouseError(
                    f"the demo server did not start on port {s.demo_port} (see {log_path}); "
                    "set OPS_DEMO_PORT to a free port"
                )
            time.sleep(0.2)
        yield url


def _read_from(path: Path, offset: int) -> str:
    with path.open() as file:
        file.seek(offset)
        return file.read()


def airflow_run_command(logical_date: str) -> list[str]:
    """Every DAG of DAG_ORDER through Airflow's own `dag.test`, in one process."""
    return [sys.executable, "-m", "ops_demo.airflow_run", logical_date, *DAG_ORDER]


def _run_dags(s: Settings, logical_date: str, log_path, console: Console) -> None:
    """Every DAG in order, in one child process; the first that fails stops the run, and the
    error names it."""
    cmd = airflow_run_command(logical_date)
    pending = list(DAG_ORDER)
    failed: str | None = None
    with (
        log_path.open("a") as log,
        console.status(f"Airflow: {pending[0]} for {logical_date} …") as st,
        Children() as children,
    ):
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = children.start(
            "airflow_run",
            cmd,
            env=demo_airflow_env(s),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for line in proc.stdout:
            log.write(line)
            if line.startswith("OPS-DAG-RESULT"):
                _, dag_id, state, seconds = line.split()
                mark = "[green]✓[/]" if state == "success" else "[red]✗[/]"
                console.print(f"{mark} {dag_id} ({float(seconds):.0f} s)")
                pending.remove(dag_id)
                if state != "success":
                    failed = f"{dag_id} ended {state}"
                elif pending:
                    st.update(f"Airflow: {pending[0]} for {logical_date} …")
        proc.wait()
    if proc.returncode != 0:
        if failed is None:  # no result line: the DAG under way when the process died
            failed = f"{pending.pop(0)} did not finish" if pending else "a DAG failed"
        not_run = f" ({', '.join(pending)} did not run)" if pending else ""
        raise OpsWarehouseError(
            f"DAG {failed} for {logical_date}{not_run}; the task log is in {log_path}"
        )


def _reset(s: Settings) -> None:
    for path in (s.demo_dir, s.dlt_dir, s.home / "dbt"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (s.warehouse_path, s.published_path):
        path.unlink(missing_ok=True)
        path.with_suffix(path.suffix + ".wal").unlink(missing_ok=True)


def run_demo(*, fresh: bool, console: Console) -> None:
    from ops_warehouse.airflow.environment import init_airflow
    from ops_warehouse.pipeline.loading import raw_counts

    s = get_settings()
    if fresh:
        _reset(s)
    started = time.monotonic()
    info = ensure_world(s, console)
    log_path = s.home / "logs" / "demo.log"
    logical_date = info.clock.date().isoformat()
    with demo_server(s, s.home / "logs" / "demo-server.log"):
        with console.status("preparing Airflow (metadata DB, writer pool) …"):
            init_airflow(s, log_path)
        _run_dags(s, logical_date, log_path, console)

    table = Table("raw table", "source rows", "raw rows", title="What was loaded")
    ok = True
    for source in ("marketing", "sales", "support"):
        counts = raw_counts(s, source)
        for entity in (e for e in ENTITIES if e.source == source):
            src = info.row_counts.get(entity.name)
            raw = counts.get(entity.name, 0)
            ok &= src == raw
            style = "" if src == raw else "red"
            table.add_row(
                f"raw_{source}.{entity.name}",
                f"{src:,}" if src is not None else "?",
                f"[{style}]{raw:,}[/]" if style else f"{raw:,}",
            )
    console.print(table)
    console.print(
        summary_text(
            s,
            until=info.until,
            seconds=time.monotonic() - started,
            log_path=log_path,
            reports=_report_paths(s),
        )
    )
    if not ok:
        raise OpsWarehouseError("raw row counts differ from the source row counts (see the table)")


def summary_text(s: Settings, *, until: date, seconds: float, log_path: Path, reports: str) -> str:
    """The end of `ops-demo`: where the run's warehouses, checks, logs and reports are, on
    the engine it really used (PostgreSQL URLs with the password masked)."""
    from ops_warehouse.warehouse.databases import published_location, working_location

    if s.warehouse == "postgres":
        from sqlalchemy.engine import make_url

        url = make_url(s.published_postgres_url)
        client = shlex.join(
            ["psql", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
            + ["-U", url.username or "postgres", "-d", url.database or ""]
        )
    elif s.warehouse == "spark":
        client = shlex.join(
            ["beeline", "-u", f"jdbc:hive2://{s.spark_thrift_host}:{s.spark_thrift_port}/published"]
        )
    else:
        client = shlex.join(["duckdb", "-readonly", str(s.published_path)])
    return (
        f"Pipeline ran for the day {until} in {seconds:.0f} s.\n"
        f"Working warehouse: {working_location(s)}\n"
        "Published warehouse (what BI tools and reports open, read-only): "
        f"{published_location(s)}\n"
        f"Data-quality results (Great Expectations Data Docs): {s.home / 'data_docs' / 'index.html'}\n"
        f"Airflow log of this run: {log_path}\n"
        + reports
        + "Next: `make up` to browse the DAGs in Airflow's UI, or open the published warehouse "
        f"with `{client}` and `select * from {'' if s.warehouse == 'spark' else 'marts.'}"
        "kpi_daily order by date_day desc limit 7`."
    )


def _report_paths(s: Settings) -> str:
    """Where the reports DAG archived this run's weekly report and daily digest."""
    from ops_warehouse.reports.archive import latest

    lines = []
    for kind, name in (("weekly", "Weekly ops report"), ("daily", "Daily digest")):
        found = latest(s, kind)
        if found:
            lines.append(f"{name} ({found.folder.name}): {found.html} (PDF and CSV beside it)\n")
    if lines:
        lines.append(f"All reports: {s.reports_dir / 'index.html'}\n")
    return "".join(lines)


def run_up(*, console: Console) -> None:
    """Airflow's components (scheduler, dag-processor, triggerer, API server) plus the demo
    APIs, on this machine only unless OPS_AIRFLOW_HOST says otherwise, until Ctrl-C or
    SIGTERM stops them all."""
    from ops_warehouse.airflow.environment import (
        api_port,
        api_url,
        ensure_passwords_file,
        init_airflow,
        start_local_airflow,
        wait_until_healthy,
    )

    s = get_settings()
    env = demo_airflow_env(s)
    env.setdefault("AIRFLOW__API__WORKERS", "1")  # one user on one machine
    url = api_url(env)
    # the API server serves reports and docs (plugins/ops_warehouse_docs.py): link there
    env.setdefault("OPS_DOCS_BASE_URL", f"{url}/ops")
    holder = port_holder(env["AIRFLOW__API__HOST"], api_port(env))
    if holder:
        raise OpsWarehouseError(
            f"port {api_port(env)} of Airflow's API server is taken by {holder}; stop it, or "
            "set AIRFLOW__API__PORT to a free port"
        )
    ensure_world(s, console)
    logs_dir = s.home / "logs"
    with demo_server(s, logs_dir / "demo-server.log") as demo_url, Children() as airflow:
        with console.status("preparing Airflow (metadata DB, writer pool, passwords) …"):
            init_airflow(s, logs_dir / "up.log")
            passwords = ensure_passwords_file(env)  # the users `make up`'s environment names
        logs = start_local_airflow(airflow, env, logs_dir)
        with console.status(f"starting Airflow on {env['AIRFLOW__API__HOST']} …"):
            wait_until_healthy(airflow, env, logs)
        login = (
            f"user {', '.join(json.loads(passwords.read_text()))}, password in {passwords} "
            "(readable by you only)"
            if passwords
            else "no login"
        )
        host = env["AIRFLOW__API__HOST"]
        console.print(
            f"Demo APIs at {demo_url}. Airflow UI at {url} ({login}); reports, Data Docs "
            f"and dbt docs at {url}/ops/. Listening on {host}"
            + (" only" if url.startswith("http://localhost:") else "")
            + f" (OPS_AIRFLOW_HOST). Logs: {logs_dir / 'airflow-*.log'}. "
            "Ctrl-C stops everything."
        )
        try:
            while not (exited := airflow.poll()):
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("Stopping Airflow and the demo APIs …")
            raise
        name, status = exited
        raise OpsWarehouseError(
            f"Airflow's {name} stopped with exit status {status}; its log is {logs[name]}. "
            "Everything else was stopped too."
        )
