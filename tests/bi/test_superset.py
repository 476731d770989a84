"""`make bi`: Superset 6.1 installed from its lock, started on 127.0.0.1, the published
warehouse registered and the "Ops overview" dashboard provisioned through the REST API.

`make bi` runs twice (the second run finds Superset running and provisions again), then:
the dashboard and each of its objects exist once; every chart returns rows through the chart
data API and renders in headless Chromium with no error tile; a chart's numbers equal the
marts'; Superset answers from each new publish while its threads overlap queries (the bug
readers.py fixes); on PostgreSQL, connected as a bi_reader role, the same dashboard renders
and neither ``audit`` nor raw can be queried. `make bi-stop` stops it at the end.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal

import psutil
import psycopg
import pytest
import requests
import sqlalchemy as sa
from PIL import Image

from bi import browser, dashboard, provision, server
from ops_warehouse.pipeline import audit
from ops_warehouse.settings import PROJECT_ROOT
from ops_warehouse.warehouse import bi_access, publish, readers
from tests.bi.conftest import base_orders, publish_generation
from tests.conftest import drop_pg_database
from tests.production.test_bi_reader import drop_role
from tests.quality.wap import free_port, run, working_copy

# Superset served from its own environment: a served stack, with the other deployments' tests in
# `make test-deploy`
pytestmark = pytest.mark.deploy

WEEKLY = "Net revenue and ad spend, by week"


@dataclasses.dataclass
class Stack:
    settings: object
    env: dict[str, str]
    api: provision.Superset
    runs: list[subprocess.CompletedProcess]
    base: int  # kpi_daily.orders of the newest day before any generation


def make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="module")
def stack(duckdb_marts, tmp_path_factory):
    home = tmp_path_factory.mktemp("bi_home")
    settings = working_copy(duckdb_marts, home, superset_port=free_port())
    base = base_orders(settings)
    publish_generation(settings, base, 0)
    env = {
        **os.environ,
        "OPS_HOME": str(home),
        "OPS_WAREHOUSE": "duckdb",
        "OPS_WAREHOUSE_PATH": str(settings.warehouse_path),
        "OPS_PUBLISHED_PATH": str(settings.published_path),
        "OPS_SUPERSET_PORT": str(settings.superset_port),
        "OPS_DOCS_BASE_URL": "https://airflow.example.com/ops",
    }
    runs = []
    try:
        for _ in range(2):
            started = time.monotonic()
            runs.append(make("bi", env))
            print(f"make bi: {time.monotonic() - started:.1f} s")
            assert runs[-1].returncode == 0, runs[-1].stdout[-3000:] + runs[-1].stderr[-3000:]
        password = server.files(settings).admin_password.read_text().strip()
        api = provision.Superset(server.base_url(settings), server.ADMIN, password)
        yield Stack(settings, env, api, runs, base)
    finally:
        stopped = make("bi-stop", env)
        assert stopped.returncode == 0, stopped.stderr
        assert server.running(settings) is None


def by_name(api: provision.Superset, resource: str, column: str) -> Counter:
    return Counter(o[column] for o in api.every(resource, ("id", column)))


def chart_ids(api: provision.Superset) -> dict[str, int]:
    return {c["slice_name"]: c["id"] for c in api.every("chart", ("id", "slice_name"))}


def chart_rows(api: provision.Superset, chart_id: int) -> list[dict]:
    return api.get(f"/api/v1/chart/{chart_id}/data/")["result"][0]["data"]


def test_make_bi_serves_superset_on_localhost_and_keeps_its_secrets(stack):
    settings = stack.settings
    assert requests.get(f"{server.base_url(settings)}/health", timeout=10).text == "OK"
    assert "Superset: http://localhost:" in stack.runs[0].stdout
    f = server.files(settings)
    assert f.folder.stat().st_mode & 0o777 == 0o700
    printed = "".join(r.stdout + r.stderr for r in stack.runs) + f.log.read_text()
    for secret in (f.admin_password, f.secret_key):
        assert secret.stat().st_mode & 0o777 == 0o600
        assert secret.read_text().strip() not in printed, f"{secret.name} printed or logged"
    listening = {
        c.laddr.ip
        for c in psutil.net_connections("tcp")
        if c.status == "LISTEN" and c.laddr.port == settings.superset_port
    }
    assert listening == {"127.0.0.1"}, listening


def test_two_runs_leave_one_dashboard_and_one_of_each_object(stack):
    api = stack.api
    assert by_name(api, "dashboard", "slug")[dashboard.SLUG] == 1
    assert by_name(api, "database", "database_name")[provision.DATABASE_NAME] == 1
    datasets = by_name(api, "dataset", "table_name")
    assert {d.name: datasets[d.name] for d in dashboard.DATASETS} == {
        d.name: 1 for d in dashboard.DATASETS
    }
    charts = by_name(api, "chart", "slice_name")
    assert {c.name: charts[c.name] for c in dashboard.CHARTS} == {
        c.name: 1 for c in dashboard.CHARTS
    }
    dash = api.get(f"/api/v1/dashboard/{dashboard.SLUG}")["result"]
    assert dash["dashboard_title"] == dashboard.TITLE and dash["published"]
    on_dashboard = {
        c["slice_name"] for c in api.get(f"/api/v1/dashboard/{dashboard.SLUG}/charts")["result"]
    }
    assert on_dashboard == {c.name for c in dashboard.CHARTS}


def test_every_chart_returns_rows_and_renders_without_an_error_tile(stack, tmp_path):
    ids = chart_ids(stack.api)
    empty = [c.name for c in dashboard.CHARTS if not chart_rows(stack.api, ids[c.name])]
    assert not empty, f"charts without rows: {empty}"

    settings = stack.settings
    cookie = browser.session_cookie(
        server.base_url(settings),
        server.ADMIN,
        server.files(settings).admin_password.read_text().strip(),
    )
    shot = tmp_path / "ops-overview.png"
    rendered = browser.render_dashboard(
        f"{server.base_url(settings)}/superset/dashboard/{dashboard.SLUG}/",
        cookie,
        shot,
        height=2600,
    )
    print(f"dashboard rendered in {rendered.seconds:.1f} s")
    errors = {t.title: t.error for t in rendered.tiles if t.error}
    assert not errors, f"error tiles: {errors}"
    titles = {t.title for t in rendered.tiles if t.title}
    assert titles >= {c.name for c in dashboard.CHARTS}, titles
    undrawn = [t.title for t in rendered.tiles if t.title and t.drawn == 0]
    assert not undrawn, f"tiles with nothing drawn: {undrawn}"
    links = sorted(link for t in rendered.tiles if not t.title for link in t.links)
    assert links == [
        "https://airflow.example.com/ops/data-docs/",
        "https://airflow.example.com/ops/dbt/",
        "https://airflow.example.com/ops/reports/",
    ], links
    image = Image.open(shot).convert("RGB")
    assert image.size[0] >= 1600
    colours = image.resize((400, 650)).getcolors(maxcolors=1 << 20)
    assert colours and len(colours) > 200, "the screenshot is (nearly) blank"


def test_links_point_at_served_urls_not_files(stack):
    layout = stack.api.get(f"/api/v1/dashboard/{dashboard.SLUG}")["result"]["position_json"]
    assert "https://airflow.example.com/ops/data-docs/" in layout
    assert "https://airflow.example.com/ops/reports/" in layout
    assert "https://airflow.example.com/ops/dbt/" in layout
    assert "file://" not in layout


def test_weekly_chart_equals_the_marts(stack):
    rows = chart_rows(stack.api, chart_ids(stack.api)[WEEKLY])
    chart = {
        datetime.fromtimestamp(r["date_day"] / 1000, UTC).date(): (
            Decimal(str(r["Net revenue"])).quantize(Decimal("0.01")),
            Decimal(str(r["Ad spend"])).quantize(Decimal("0.01")),
        )
        for r in rows
    }
    with readers.connect_published(stack.settings) as con:
        marts = {
            week: (net, spend)
            for week, net, spend in con.execute(
                "select cast(date_trunc('week', date_day) as date), sum(net_revenue), sum(spend) "
                "from marts.kpi_daily group by 1"
            ).fetchall()
        }
        scorecard = dict(
            con.execute(
                "select period_start, value from marts.kpi_scorecard "
                "where period_grain = 'week' and kpi = 'net_revenue'"
            ).fetchall()
        )
    assert chart == marts
    # and the weekly KPI mart, computed on its own, says the same
    assert {w: round(float(v[0]), 2) for w, v in chart.items()} == {
        w: round(v, 2) for w, v in scorecard.items() if isinstance(w, date) and w in chart
    }
    assert len(chart) > 10


def test_superset_answers_from_each_publish_while_queries_overlap(stack):
    """Superset's threads answer chart queries while one runs a slow SQL Lab query and the
    pipeline publishes three times: each answer to a query sent after a publish has
    returned is that publish's."""
    settings, api = stack.settings, stack.api
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

    def ask_chart() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                value = api.post("/api/v1/chart/data", query)["result"][0]["data"][0]["orders"]
                with lock:
                    answers.append((started, time.monotonic(), value - stack.base))
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

    def slow_query() -> None:
        while not stop.is_set():
            try:
                api.post(
                    "/api/v1/sqllab/execute/",
                    {
                        "database_id": database,
                        "sql": "select count(*) from range(100000000) r where r % 7 = 3",
                        "runAsync": False,
                        "client_id": secrets.token_hex(5),
                        "tab": "slow",
                    },
                )
            except Exception as exc:
                with lock:
                    errors.append(f"slow query: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=ask_chart) for _ in range(3)]
    threads.append(threading.Thread(target=slow_query))
    published_at = {}
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)
        for generation in (1, 2, 3):
            publish_generation(settings, stack.base, generation)
            published_at[generation] = time.monotonic()
            time.sleep(3.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert not errors, errors[:3]
    stale = [(g, a) for g, at in published_at.items() for a in answers if a[0] >= at and a[2] < g]
    lags = [
        min((a[1] for a in answers if a[2] >= g and a[1] >= at), default=float("inf")) - at
        for g, at in published_at.items()
    ]
    print(f"{len(answers)} chart answers; first fresh answer after each publish: {lags}")
    assert not stale, f"{len(stale)} of {len(answers)} answers read an older publish"
    assert {a[2] for a in answers} >= {0, 1, 2, 3}


def test_postgres_bi_reader_renders_the_dashboard_and_reads_marts_only(
    stack, postgres_marts, tmp_path
):
    """Superset re-pointed at the PostgreSQL published warehouse, as a bi_reader role."""
    role = f"bi_reader_s{uuid.uuid4().hex[:8]}"
    name = f"ops_bi_superset_{os.getpid()}_published"
    settings = dataclasses.replace(
        postgres_marts,
        published_postgres_url=postgres_marts.postgres_url.rsplit("/", 1)[0] + f"/{name}",
        bi_reader_password=secrets.token_urlsafe(16),
        docs_base_url=stack.settings.docs_base_url,
    )
    drop_pg_database(name)
    api = stack.api
    try:
        this = run("manual__superset_postgres")
        audit.record_run_start(settings, this)
        publish.publish(settings, this)
        bi_access.setup_bi_reader(settings, role=role)

        provision.provision(api, settings, role=role)

        database = api.every("database", ("id", "database_name"))[0]["id"]
        ids = chart_ids(api)
        assert all(chart_rows(api, ids[c.name]) for c in dashboard.CHARTS)

        def sql(statement: str) -> dict:
            return api._call(  # the status too: refusals are answers here
                "POST",
                "/api/v1/sqllab/execute/",
                json={
                    "database_id": database,
                    "sql": statement,
                    "runAsync": False,
                    "client_id": secrets.token_hex(5),
                    "tab": "pg",
                },
            )

        uri = api.get(f"/api/v1/database/{database}/connection")["result"]["sqlalchemy_uri"]
        assert uri.startswith(f"postgresql+psycopg2://{role}:"), uri
        assert settings.bi_reader_password not in uri, "Superset shows the password"
        assert sql("select count(*) as n from marts.kpi_daily")["data"][0]["n"] > 0
        # the published database holds audit, but not for bi_reader; raw is not in it at all
        with pytest.raises(provision.SupersetError, match="permission denied for schema audit"):
            sql("select count(*) from audit.pipeline_runs")
        with pytest.raises(provision.SupersetError, match="does not exist"):
            sql("select count(*) from raw_sales.orders")
        with readers.connect_published(settings, role=role) as con:
            net = con.execute("select sum(net_revenue) from marts.kpi_daily").fetchone()[0]
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                con.execute("create table marts.scratch (x int)")
        engine = readers.published_engine(settings, role=role)
        try:
            with engine.connect() as c:
                assert (
                    c.execute(sa.text("select sum(net_revenue) from marts.kpi_daily")).scalar()
                    == net
                )
        finally:
            engine.dispose()
        weekly = chart_rows(api, ids[WEEKLY])
        assert abs(sum(Decimal(str(r["Net revenue"])) for r in weekly) - net) < Decimal("0.01")

        cookie = browser.session_cookie(
            server.base_url(stack.settings),
            server.ADMIN,
            server.files(stack.settings).admin_password.read_text().strip(),
        )
        rendered = browser.render_dashboard(
            f"{server.base_url(stack.settings)}/superset/dashboard/{dashboard.SLUG}/",
            cookie,
            tmp_path / "ops-overview-postgres.png",
            height=2600,
        )
        assert not [t for t in rendered.tiles if t.error], rendered.tiles
        assert all(t.drawn for t in rendered.tiles if t.title)
    finally:
        provision.provision(api, stack.settings)  # back to DuckDB for whoever comes next
        drop_pg_database(name)
        drop_role(role)
