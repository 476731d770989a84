"""Serves the reports archive, the Data Docs and the dbt docs from Airflow's API server at
/ops/ (reports/, data-docs/, dbt/), behind Airflow's login, with links in the Browse menu.

Airflow imports this file at every plugin load (scheduler, DAG processor, workers, API
server), so it imports nothing but Airflow's plugin class: the app (ops_warehouse.airflow.docs_site,
FastAPI) is built on the API server's first request to /ops/.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ops"


class LazyDocsApp:
    """An ASGI app that builds the real one on its first request."""

    def __init__(self) -> None:
        self.app = None

    async def __call__(self, scope, receive, send) -> None:
        if self.app is None:
            from ops_warehouse.airflow.docs_site import create_app

            self.app = create_app()
        await self.app(scope, receive, send)


class OpsWarehouseDocsPlugin(AirflowPlugin):
    name = "ops_warehouse_docs"
    fastapi_apps = [{"app": LazyDocsApp(), "url_prefix": URL_PREFIX, "name": "Ops Warehouse docs"}]
    # relative to Airflow's base URL, so they work behind a path prefix too
    external_views = [
        {"name": "Ops reports", "href": "ops/reports/", "category": "browse"},
        {"name": "Data Docs", "href": "ops/data-docs/", "category": "browse"},
        {"name": "dbt docs", "href": "ops/dbt/", "category": "browse"},
    ]
