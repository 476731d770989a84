"""The reports archive, the Data Docs and the dbt docs as one small web app, which
plugins/ops_warehouse_docs.py mounts on Airflow's API server at ``/ops/``, and the links
that point there.

    /ops/            what is served, and whether each part exists yet
    /ops/reports/    ``settings.reports_dir`` (index.html, weekly/…, daily/…)
    /ops/data-docs/  the Great Expectations Data Docs ($OPS_HOME/data_docs)
    /ops/dbt/        the one-page dbt documentation ``ops docs`` writes (that page only)

Every request needs an Airflow user allowed to see Airflow's UI, checked by Airflow's own
dependency and auth manager (the reports hold business numbers): the browser's Airflow session
cookie or an ``Authorization: Bearer`` token. A browser that is not signed in is sent to
Airflow's login and back. Hidden files and anything outside the three folders are refused.

Only the standard library at module level: ``served_url`` is called by the alerts and the
reports, and the app is built (FastAPI, Airflow's security) on the first request only. No
``from __future__ import annotations``: FastAPI reads the route functions' annotations, and
those name classes imported inside ``create_app``.
"""

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from ops_warehouse.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI


@dataclass(frozen=True)
class Site:
    name: str  # its path under the mount: /ops/<name>/
    title: str
    folder: Path
    missing: str  # the 404 page's text while the folder does not exist
    page: str | None = None  # serve only this file of the folder, as <name>/


def sites(settings: Settings) -> dict[str, Site]:
    from ops_warehouse.pipeline.quality.gx_runner import data_docs_dir

    return {
        s.name: s
        for s in (
            Site(
                "reports",
                "Reports archive",
                settings.reports_dir,
                "No reports yet: run make demo (the report DAGs archive every weekly report "
                "and daily digest here).",
            ),
            Site(
                "data-docs",
                "Data Docs (Great Expectations)",
                data_docs_dir(settings),
                "No Data Docs yet: run make demo (the transform DAG's validate_marts task "
                "builds them).",
            ),
            Site(
                "dbt",
                "dbt docs",
                settings.home / "dbt" / "target",
                "No dbt docs yet: run make docs (ops docs).",
                page="static_index.html",
            ),
        )
    }


def served_url(settings: Settings, path: Path) -> str | None:
    """Where a generated file is served under ``OPS_DOCS_BASE_URL``; None when that is not set
    or the file is in none of the served folders."""
    base = settings.docs_base_url
    if not base:
        return None
    path = path.resolve()
    # the deepest folder first, should one be set inside another
    for site in sorted(sites(settings).values(), key=lambda s: -len(s.folder.resolve().parts)):
        try:
            relative = path.relative_to(site.folder.resolve())
        except ValueError:
            continue
        if site.page is not None:
            if relative == Path(site.page):
                return f"{base}/{site.name}/"
            continue
        return f"{base}/{site.name}/" + quote(relative.as_posix())
    return None


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:48rem}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def create_app(settings: Settings | None = None) -> "FastAPI":
    """The app the plugin mounts. The folders are read from the settings now, their contents
    at each request."""
    import os

    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
    from starlette.exceptions import HTTPException
    from starlette.staticfiles import StaticFiles

    served = sites(settings or get_settings())
    files = {
        name: StaticFiles(directory=site.folder, html=True, check_dir=False)
        for name, site in served.items()
        if site.page is None
    }
    app = FastAPI(
        title="Ops Warehouse docs",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        # the same check as Airflow's UI: a user who may see the website
        dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
    )

    @app.exception_handler(HTTPException)
    async def error_page(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            login = request.scope.get("app_root_path", "") + "/api/v2/auth/login"
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{login}?{urlencode({'next': back})}")
        home = request.scope.get("root_path", "") + "/"
        body = f'<p>{html.escape(str(exc.detail))}</p><p><a href="{home}">Back</a></p>'
        return HTMLResponse(
            _page(f"Ops Warehouse: {exc.status_code}", body),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> str:
        items = []
        for site in served.values():
            title = html.escape(site.title)
            if (site.folder / site.page).is_file() if site.page else site.folder.is_dir():
                items.append(f'<li><a href="{site.name}/">{title}</a></li>')
            else:
                items.append(f"<li>{title}: {html.escape(site.missing)}</li>")
        return _page("Ops Warehouse", f"<ul>{''.join(items)}</ul>")

    @app.api_route("/{name}", methods=["GET", "HEAD"])
    def folder(request: Request, name: str) -> Response:
        if name not in served:
            raise HTTPException(404, "Not found.")
        return RedirectResponse(request.url.path + "/")

    @app.api_route("/{name}/{path:path}", methods=["GET", "HEAD"])
    async def serve(request: Request, name: str, path: str) -> Response:
        site = served.get(name)
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if site is None or any(p.startswith(".") or "\\" in p or "\0" in p for p in parts):
            raise HTTPException(404, "Not found.")  # "..", hidden files and staging folders
        if site.page is not None:
            page = site.folder / site.page
            if parts:
                raise HTTPException(404, "Not found.")
            if not page.is_file():
                raise HTTPException(404, site.missing)
            return FileResponse(page, media_type="text/html")
        if not site.folder.is_dir():
            raise HTTPException(404, site.missing)
        target = os.path.join(*parts) if parts else "."
        return await files[name].get_response(target, request.scope)

    return app
