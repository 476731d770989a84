"""Superset provisioned as code, through its REST API: the published warehouse as the
database "Ops Warehouse", the datasets, charts and "Ops overview" dashboard of
bi/dashboard.py.

Every object is found by its name (the database by ``database_name``, a dataset by schema and
table, a chart by ``slice_name``, the dashboard by its slug) and updated when it exists, so a
second run changes the first run's objects and never adds copies.

The warehouse is reached the way readers.py says: on DuckDB ``duckdb+published:///<file>``
(each connection opens the file as it is now, read-only, locked down); on PostgreSQL the
published database as ``bi_reader`` (SELECT on ``marts`` only).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import requests

from bi import dashboard
from bi.dashboard import Chart, Dataset
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse import readers
from ops_warehouse.warehouse.bi_access import BI_READER_ROLE

log = logging.getLogger(__name__)

DATABASE_NAME = "Ops Warehouse"
TIMEOUT_S = 60


class SupersetError(RuntimeError):
    """Superset refused a request (the message names the request and Superset's answer)."""


@dataclass(frozen=True)
class Provisioned:
    database_id: int
    datasets: dict[str, int]
    charts: dict[str, int]
    dashboard_id: int
    slug: str


class Superset:
    """Superset's REST API as its admin: a JWT and the CSRF token its writes need."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        token = self._call(
            "POST",
            "/api/v1/security/login",
            json={"username": username, "password": password, "provider": "db", "refresh": False},
        )["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.http.headers["X-CSRFToken"] = self.get("/api/v1/security/csrf_token/")["result"]
        self.http.headers["Referer"] = self.base_url

    def _call(self, method: str, path: str, **kwargs) -> dict[str, Any]:
        response = self.http.request(method, self.base_url + path, timeout=TIMEOUT_S, **kwargs)
        if response.status_code >= 400:
            raise SupersetError(
                f"{method} {self.base_url}{path}: HTTP {response.status_code}: "
                f"{response.text[:1000]}"
            )
        return response.json() if response.content else {}

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, json=body)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("PUT", path, json=body)

    def every(self, resource: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """Every object of a list endpoint (``chart``, ``dataset`` …), page by page."""
        found: list[dict[str, Any]] = []
        page = 0
        while True:
            rison = f"(columns:!({','.join(columns)}),page:{page},page_size:100)"
            result = self._call("GET", f"/api/v1/{resource}/", params={"q": rison})["result"]
            found += result
            if len(result) < 100:
                return found
            page += 1


def warehouse_uri(settings: Settings, role: str = BI_READER_ROLE) -> str:
    """The SQLAlchemy URI Superset connects with (holds bi_reader's password on PostgreSQL;
    Superset stores it encrypted with its secret key)."""
    return readers.published_url(settings, role=role)


def docs_links(settings: Settings) -> dict[str, str]:
    """Where the reports archive, the Data Docs and the dbt docs are served: under
    ``OPS_DOCS_BASE_URL``, else where `make up` serves them (Airflow's API server)."""
    from ops_warehouse.airflow.environment import airflow_env, api_url

    base = settings.docs_base_url or f"{api_url(airflow_env(settings))}/ops"
    return {
        "reports": f"{base}/reports/",
        "data_docs": f"{base}/data-docs/",
        "dbt_docs": f"{base}/dbt/",
    }


def provision(api: Superset, settings: Settings, role: str = BI_READER_ROLE) -> Provisioned:
    database_id = _upsert_database(api, warehouse_uri(settings, role))
    datasets = {d.name: _upsert_dataset(api, database_id, d) for d in dashboard.DATASETS}
    dashboard_id = _upsert_dashboard_shell(api)
    charts = {
        c.name: _upsert_chart(api, c, datasets[c.dataset], dashboard_id) for c in dashboard.CHARTS
    }
    api.put(
        f"/api/v1/dashboard/{dashboard_id}",
        {
            "dashboard_title": dashboard.TITLE,
            "slug": dashboard.SLUG,
            "published": True,
            "position_json": json.dumps(_layout(charts, docs_links(settings))),
            "json_metadata": json.dumps(
                {
                    "refresh_frequency": 0,
                    "cross_filters_enabled": False,
                    "native_filter_configuration": [],
                    "color_scheme": "supersetColors",
                }
            ),
        },
    )
    return Provisioned(
        database_id,
        datasets,
        charts,
        dashboard_id,
        dashboard.SLUG,
    )


def _upsert_database(api: Superset, uri: str) -> int:
    body = {
        "database_name": DATABASE_NAME,
        "sqlalchemy_uri": uri,
        "expose_in_sqllab": True,
        "allow_dml": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_file_upload": False,
        "allow_run_async": False,
        "extra": json.dumps({"allows_virtual_table_explore": True, "engine_params": {}}),
    }
    existing = [
        d
        for d in api.every("database", ("id", "database_name"))
        if d["database_name"] == DATABASE_NAME
    ]
    if existing:
        api.put(f"/api/v1/database/{existing[0]['id']}", body)
        return existing[0]["id"]
    return api.post("/api/v1/database/", body)["id"]


def _upsert_dataset(api: Superset, database_id: int, dataset: Dataset) -> int:
    existing = [
        d
        for d in api.every("dataset", ("id", "table_name", "schema", "database.id"))
        if d["table_name"] == dataset.name
        and d["schema"] == dashboard.SCHEMA
        and d["database"]["id"] == database_id
    ]
    if existing:
        dataset_id = existing[0]["id"]
        if dataset.sql is not None:
            api.put(f"/api/v1/dataset/{dataset_id}?override_columns=true", {"sql": dataset.sql})
    else:
        body = {"database": database_id, "schema": dashboard.SCHEMA, "table_name": dataset.name}
        if dataset.sql is not None:
            body["sql"] = dataset.sql
        dataset_id = api.post("/api/v1/dataset/", body)["id"]
    # the columns as the marts have them now (a mart may have gained a column)
    api.put(f"/api/v1/dataset/{dataset_id}/refresh", {})
    return dataset_id


def _upsert_dashboard_shell(api: Superset) -> int:
    existing = [d for d in api.every("dashboard", ("id", "slug")) if d["slug"] == dashboard.SLUG]
    if existing:
        return existing[0]["id"]
    return api.post(
        "/api/v1/dashboard/", {"dashboard_title": dashboard.TITLE, "slug": dashboard.SLUG}
    )["id"]


def _upsert_chart(api: Superset, chart: Chart, dataset_id: int, dashboard_id: int) -> int:
    params = {**chart.params, "datasource": f"{dataset_id}__table"}
    body = {
        "slice_name": chart.name,
        "viz_type": params["viz_type"],
        "datasource_id": dataset_id,
        "datasource_type": "table",
        "params": json.dumps(params),
        "query_context": json.dumps(query_context(params, dataset_id)),
        "dashboards": [dashboard_id],
    }
    existing = [
        c for c in api.every("chart", ("id", "slice_name")) if c["slice_name"] == chart.name
    ]
    if existing:
        api.put(f"/api/v1/chart/{existing[0]['id']}", body)
        return existing[0]["id"]
    return api.post("/api/v1/chart/", body)["id"]


def query_context(params: dict[str, Any], dataset_id: int) -> dict[str, Any]:
    """The query a chart's form data asks for, as the chart data API takes it: what
    ``GET /api/v1/chart/<id>/data/`` (and a CSV download) runs. Rows as the query returns
    them, before the chart's own reshaping."""
    viz = params["viz_type"]
    columns: list[Any] = []
    if viz == "table":
        columns = list(params["all_columns"])
        metrics: list[Any] = []
    else:
        x_axis: dict[str, Any] = {
            "columnType": "BASE_AXIS",
            "expressionType": "SQL",
            "sqlExpression": params["x_axis"],
            "label": params["x_axis"],
        }
        if params.get("time_grain_sqla"):
            x_axis["timeGrain"] = params["time_grain_sqla"]
        groupby = params.get("groupby") or []
        columns = [x_axis, *([groupby] if isinstance(groupby, str) else groupby)]
        metrics = params.get("metrics") or [params["metric"]]
    filters = [
        {
            "col": f["subject"],
            "op": f["operator"],
            **({"val": f["comparator"]} if "comparator" in f else {}),
        }
        for f in params.get("adhoc_filters", [])
        if f["operator"] != "TEMPORAL_RANGE"
    ]
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": False,
        "queries": [
            {
                "columns": columns,
                "metrics": metrics,
                "filters": filters,
                "orderby": [],
                "row_limit": params.get("row_limit", 10000),
                "time_range": "No filter",
                "extras": {"where": "", "having": ""},
            }
        ],
        "form_data": params,
        "result_format": "json",
        "result_type": "full",
    }


def _layout(charts: dict[str, int], links: dict[str, str]) -> dict[str, Any]:
    """Superset's position_json: a grid of rows, each row's tiles left to right."""
    by_name: dict[str, Any] = {c.name: c for c in dashboard.CHARTS}
    by_name[dashboard.LINKS.name] = dashboard.LINKS
    layout: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": dashboard.TITLE}},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
    }
    for r, row in enumerate(dashboard.ROWS, start=1):
        row_id = f"ROW-{r}"
        layout["GRID_ID"]["children"].append(row_id)
        layout[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for name in row:
            tile = by_name[name]
            parents = ["ROOT_ID", "GRID_ID", row_id]
            if isinstance(tile, Chart):
                tile_id = f"CHART-{charts[name]}"
                node = {
                    "type": "CHART",
                    "meta": {
                        "chartId": charts[name],
                        "sliceName": name,
                        "width": tile.width,
                        "height": tile.height,
                    },
                }
            else:
                tile_id = f"MARKDOWN-{name}"
                node = {
                    "type": "MARKDOWN",
                    "meta": {
                        "code": tile.text.format(**links),
                        "width": tile.width,
                        "height": tile.height,
                    },
                }
            layout[row_id]["children"].append(tile_id)
            layout[tile_id] = {"id": tile_id, "children": [], "parents": parents, **node}
    return layout


def main() -> int:
    """The compose stack's ``superset-init``: wait for Superset at ``SUPERSET_URL``, then
    provision it as ``SUPERSET_ADMIN_USERNAME`` / ``SUPERSET_ADMIN_PASSWORD`` (from .env),
    with the OPS_* settings of the container (the PostgreSQL warehouse, bi_reader)."""
    import os
    import sys
    import time

    from ops_warehouse.settings import get_settings

    missing = [n for n in ("SUPERSET_URL", "SUPERSET_ADMIN_PASSWORD") if not os.environ.get(n)]
    if missing:
        sys.exit(
            f"superset provisioning: {', '.join(missing)} not set (see deploy/compose.env.example)"
        )
    url = os.environ["SUPERSET_URL"].rstrip("/")
    deadline = time.monotonic() + 600
    while True:
        try:
            if requests.get(f"{url}/health", timeout=5).ok:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"superset provisioning: {url} did not answer in 10 minutes")
        time.sleep(5)
    settings = get_settings()
    # the datasets need the marts: a new stack publishes once its DAGs have run
    while not _published(settings):
        print("superset provisioning: waiting for the first publish", flush=True)
        time.sleep(60)
    api = Superset(
        url,
        os.environ.get("SUPERSET_ADMIN_USERNAME", "admin"),
        os.environ["SUPERSET_ADMIN_PASSWORD"],
    )
    made = provision(api, settings)
    print(
        f"superset: {DATABASE_NAME!r} connected, dashboard {made.slug!r} with {len(made.charts)} charts"
    )
    return 0


def _published(settings: Settings) -> bool:
    """Whether the published warehouse has its marts (kpi_daily) for bi_reader to read."""
    try:
        with readers.connect_published(settings) as con:
            cursor = con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = 'marts' and table_name = 'kpi_daily'"
            )
            return cursor.fetchone()[0] > 0
    except Exception:  # no published file or database yet
        return False


if __name__ == "__main__":
    raise SystemExit(main())
