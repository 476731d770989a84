"""BI benchmark: Superset (`make bi`) on a published warehouse.

    make bench-bi [HOME_DIR=var] [LABEL=scale-1]
    uv run python -m bench.bench_bi [--home var] [--label scale-1] [--publishes 5]

``--home`` is an OPS_HOME holding a built working warehouse (``make demo`` leaves one in
var/). Its working file is copied into var/bench/bi-<label>/, so the benchmark publishes
and runs Superset there and leaves the home as it was. Measured:

- `make bi`'s steps on a fresh Superset metadata: environment install (uv pip sync), metadata
  preparation (migrations, roles, admin), server start, provisioning;
- opening the published file by ATTACH (what every reader connection costs);
- each chart's query through Superset's chart data API (median of 5);
- the dashboard's load time in headless Chromium, from navigation until no tile is loading:
  the first load after start, then the median of 5;
- from a publish returning to Superset's first answer with the new data, for each of
  ``--publishes`` publishes, while Superset's threads overlap queries (three threads asking
  one chart query in a loop, one running a slow SQL Lab query).

Writes bench/results/bi-<date>-<host>.json and prints a table. Timings are measured here,
never asserted in tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import secrets
import shutil
import socket
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from bi import browser, dashboard, provision, server
from ops_warehouse.pipeline import audit
from ops_warehouse.pipeline.audit import RunInfo
from ops_warehouse.processes import port_holder
from ops_warehouse.settings import PROJECT_ROOT, Settings
from ops_warehouse.warehouse import publish, readers

console = Console()
GENERATION_SQL = "select orders from marts.kpi_daily order by date_day desc limit 1"


def scratch_settings(home: Path, label: str) -> Settings:
    source = Settings.from_env()
    source = dataclasses.replace(
        source, home=home, warehouse_path=home / "warehouse" / "working.duckdb"
    )
    root = PROJECT_ROOT / "var" / "bench" / f"bi-{label}"
    if root.exists():
        shutil.rmtree(root)
    (root / "warehouse").mkdir(parents=True)
    with duckdb.connect(str(source.warehouse_path)) as con:
        con.execute("checkpoint")
    shutil.copyfile(source.warehouse_path, root / "warehouse" / "working.duckdb")
    port = source.superset_port
    while port_holder(server.HOST, port):
        port += 1
    return dataclasses.replace(
        source,
        home=root,
        warehouse="duckdb",
        warehouse_path=root / "warehouse" / "working.duckdb",
        published_path=root / "warehouse" / "published.duckdb",
        reports_dir=root / "reports",
        parquet_export_dir=None,
        superset_port=port,
        alert_emails=(),
        alert_webhook_url="",
    )


def publish_generation(settings: Settings, base: int, generation: int) -> float:
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "update marts.kpi_daily set orders = ? "
            "where date_day = (select max(date_day) from marts.kpi_daily)",
            [base + generation],
        )
    now = datetime.now(UTC)
    run = RunInfo("transform", f"bench_bi__{generation}", now, now, now)
    audit.record_run_start(settings, run)
    started = time.monotonic()
    publish.publish(settings, run)
    return time.monotonic() - started


def timed(step):
    started = time.monotonic()
    result = step()
    return time.monotonic() - started, result


def freshness(settings: Settings, api: provision.Superset, base: int, publishes: int) -> dict:
    datasets = {d["table_name"]: d["id"] for d in api.every("dataset", ("id", "table_name"))}
    database = api.every("database", ("id", "database_name"))[0]["id"]
    with readers.connect_published(settings) as con:
        newest = con.execute("select max(date_day) from marts.kpi_daily").fetchone()[0]
    query = {
        "datasource": {"id": datasets["kpi_daily"], "type": "table"},
        "queries": [
            {
                "columns": [],
                "metrics": [dashboard.metric("max(orders)", "orders")],
                "filters": [{"col": "date_day", "op": "==", "val": newest.isoformat()}],
                "row_limit": 1,
                "time_range": "No filter",
            }
        ],
        "result_format": "json",
        "result_type": "full",
    }
    answers: list[tuple[float, float, int]] = []
    errors: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def ask() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                value = api.post("/api/v1/chart/data", query)["result"][0]["data"][0]["orders"]
                with lock:
                    answers.append((started, time.monotonic(), value - base))
            except Exception as exc:
                errors.append(repr(exc))

    def slow() -> None:
        while not stop.is_set():
            try:
                api.post(
                    "/api/v1/sqllab/execute/",
                    {
                        "database_id": database,
                        "sql": "select count(*) from range(100000000) r where r % 7 = 3",
                        "runAsync": False,
                        "client_id": secrets.token_hex(5),
                        "tab": "bench",
                    },
                )
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=ask) for _ in range(3)] + [threading.Thread(target=slow)]
    published_at: dict[int, float] = {}
    publish_seconds = []
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        for generation in range(1, publishes + 1):
            publish_seconds.append(publish_generation(settings, base, generation))
            published_at[generation] = time.monotonic()
            time.sleep(4)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    lags = [
        min((a[1] for a in answers if a[2] >= g and a[1] >= at), default=float("nan")) - at
        for g, at in published_at.items()
    ]
    stale = sum(1 for g, at in published_at.items() for a in answers if a[0] >= at and a[2] < g)
    latencies = [a[1] - a[0] for a in answers]
    return {
        "publishes": publishes,
        "publish_seconds_median": round(statistics.median(publish_seconds), 2),
        "first_fresh_answer_seconds": [round(x, 2) for x in lags],
        "answers": len(answers),
        "stale_answers_started_after_a_publish": stale,
        "errors": len(errors),
        "chart_query_seconds_median_under_load": round(statistics.median(latencies), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=Settings.from_env().home)
    parser.add_argument("--label", default="scale-1")
    parser.add_argument("--publishes", type=int, default=5)
    args = parser.parse_args()
    settings = scratch_settings(args.home.resolve(), args.label)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        base = con.execute(GENERATION_SQL).fetchone()[0]
        source_rows = sum(
            con.execute(f'select count(*) from marts."{t}"').fetchone()[0]
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        )
    out: dict = {
        "label": args.label,
        "host": socket.gethostname(),
        "machine": f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mart_rows": source_rows,
    }
    out["first_publish_seconds"] = round(publish_generation(settings, base, 0), 2)
    out["published_file_mb"] = round(settings.published_path.stat().st_size / 1e6, 1)
    attach = []
    for _ in range(20):
        t, con = timed(lambda: readers.connect_published(settings))
        con.close()
        attach.append(t)
    out["attach_ms_median"] = round(statistics.median(attach) * 1000, 1)

    try:
        out["install_seconds"] = round(server.install(), 1)
        out["prepare_seconds"], _ = timed(lambda: server.prepare(settings))
        out["start_seconds"], _ = timed(lambda: server.start_server(settings))
        password = server.files(settings).admin_password.read_text().strip()
        api = provision.Superset(server.base_url(settings), server.ADMIN, password)
        out["provision_seconds"], made = timed(lambda: provision.provision(api, settings))

        url = f"{server.base_url(settings)}/superset/dashboard/{dashboard.SLUG}/"
        cookie = browser.session_cookie(server.base_url(settings), server.ADMIN, password)
        shots = settings.home / "screenshots"
        loads = [browser.render_dashboard(url, cookie, shots / f"load-{i}.png") for i in range(6)]
        out["dashboard_first_load_seconds"] = round(loads[0].seconds, 2)
        out["dashboard_load_seconds_median"] = round(
            statistics.median(r.seconds for r in loads[1:]), 2
        )
        out["dashboard_error_tiles"] = sum(1 for r in loads for t in r.tiles if t.error)
        out["chart_query_seconds_median"] = {}
        for name, chart_id in made.charts.items():
            path = f"/api/v1/chart/{chart_id}/data/"
            times = [timed(lambda path=path: api.get(path))[0] for _ in range(5)]
            out["chart_query_seconds_median"][name] = round(statistics.median(times), 3)
        out["freshness"] = freshness(settings, api, base, args.publishes)
    finally:
        server.stop(settings)
    for key in ("prepare_seconds", "start_seconds", "provision_seconds"):
        out[key] = round(out[key], 1)

    results = PROJECT_ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    path = results / f"bi-{datetime.now(UTC):%Y-%m-%d}-{socket.gethostname()}-{args.label}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    table = Table(title=f"BI benchmark, {args.label} ({source_rows:,} mart rows)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in out.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                table.add_row(f"{key}: {sub}", str(v))
        else:
            table.add_row(key, str(value))
    console.print(table)
    console.print(f"results: {path}")


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
