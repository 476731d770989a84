"""plugins/ops_warehouse_docs.py: Airflow loads it as a plugin without importing the package,
and the app it mounts serves the reports, the Data Docs and the dbt docs to a signed-in
Airflow user only, refusing everything outside those folders."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ops_warehouse.airflow.docs_site import served_url
from ops_warehouse.settings import PROJECT_ROOT, Settings

# Loads the plugins folder as Airflow does, mounts the plugins' FastAPI apps on an app the way
# the API server does (init_plugins, init_auth_manager), then sends each request of argv[1]:
# [label, who, method, path, accept] (who: anonymous, viewer, bearer) or [label, "remove", folder].
SERVE = textwrap.dedent(
    """
    import json, shutil, sys, time
    from airflow import plugins_manager
    before = set(sys.modules)
    started = time.monotonic()
    plugins, errors = plugins_manager._get_plugins()
    out = {
        "seconds": time.monotonic() - started,
        "new_modules": sorted(set(sys.modules) - before),
        "errors": {k: str(v) for k, v in errors.items()},
        "plugins": {
            p.name: {
                "fastapi_apps": [
                    {"url_prefix": a["url_prefix"], "name": a["name"]} for a in p.fastapi_apps
                ],
                "external_views": p.external_views,
            }
            for p in plugins
        },
        "responses": {},
    }
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from airflow import settings
    from airflow.api_fastapi.app import init_auth_manager, init_plugins
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.revoked_token import RevokedToken

    # the one table of the metadata database that validating a token reads
    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    root = FastAPI()
    init_plugins(root)
    token = init_auth_manager(root).generate_jwt(
        SimpleAuthManagerUser(username="viewer", role="viewer")
    )
    clients = {
        "anonymous": TestClient(root, follow_redirects=False),
        "viewer": TestClient(root, follow_redirects=False, cookies={"_token": token}),
        "bearer": TestClient(
            root, follow_redirects=False, headers={"Authorization": f"Bearer {token}"}
        ),
    }
    for label, who, *rest in json.loads(sys.argv[1]):
        if who == "remove":
            shutil.rmtree(rest[0])
            continue
        method, path, accept = rest
        r = clients[who].request(method, path, headers={"Accept": accept})
        out["responses"][label] = {
            "status": r.status_code,
            "text": r.text,
            "type": r.headers.get("content-type", ""),
            "location": r.headers.get("location"),
        }
    print(json.dumps(out))
    """
)

HTML = "text/html,application/xhtml+xml"
SECRET = "net revenue 1234567.89"
REQUESTS = [
    ["home", "viewer", "GET", "/ops/", HTML],
    ["reports", "viewer", "GET", "/ops/reports/", HTML],
    ["reports no slash", "viewer", "GET", "/ops/reports", HTML],
    ["report", "viewer", "GET", "/ops/reports/weekly/2026-W47/report.html", HTML],
    ["report folder", "viewer", "GET", "/ops/reports/weekly/2026-W47/", HTML],
    ["data docs", "viewer", "GET", "/ops/data-docs/", HTML],
    ["bearer", "bearer", "GET", "/ops/data-docs/index.html", "*/*"],
    ["anonymous browser", "anonymous", "GET", "/ops/reports/", HTML],
    ["anonymous client", "anonymous", "GET", "/ops/reports/weekly/2026-W47/report.html", "*/*"],
    ["anonymous traversal", "anonymous", "GET", "/ops/reports/%2e%2e/settings.py", "*/*"],
    # the client removes a plain "/../" itself; encoded, the dots reach the server
    ["dot dot", "viewer", "GET", "/ops/reports/../settings.py", HTML],
    ["encoded dot dot", "viewer", "GET", "/ops/reports/%2e%2e/settings.py", HTML],
    ["encoded slash", "viewer", "GET", "/ops/data-docs/..%2fsettings.py", HTML],
    ["two levels", "viewer", "GET", "/ops/reports/weekly/%2E%2E/%2e%2e/settings.py", HTML],
    ["other site", "viewer", "GET", "/ops/data-docs/%2e%2e/reports/index.html", HTML],
    ["symlink out", "viewer", "GET", "/ops/reports/leak.html", HTML],
    ["hidden", "viewer", "GET", "/ops/reports/.weekly.2026-W48.staged/report.html", HTML],
    ["no listing", "viewer", "GET", "/ops/reports/weekly/", HTML],
    ["unknown site", "viewer", "GET", "/ops/warehouse/working.duckdb", HTML],
    ["dbt missing", "viewer", "GET", "/ops/dbt/", HTML],
    ["dbt other file", "viewer", "GET", "/ops/dbt/manifest.json", HTML],
    ["post", "viewer", "POST", "/ops/reports/", HTML],
    ["remove reports", "remove"],  # then the folder settings.reports_dir is gone
    ["reports missing", "viewer", "GET", "/ops/reports/", HTML],
    ["home without reports", "viewer", "GET", "/ops/", HTML],
]
REFUSED = [
    "dot dot",
    "encoded dot dot",
    "encoded slash",
    "two levels",
    "other site",
    "symlink out",
    "hidden",
    "no listing",
    "unknown site",
    "dbt other file",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("ops_home")
    (home / "settings.py").write_text(f"SECRET = {SECRET!r}\n")
    reports = home / "reports"
    report = reports / "weekly" / "2026-W47"
    report.mkdir(parents=True)
    (reports / "index.html").write_text("<h1>All reports</h1>")
    (report / "report.html").write_text("<h1>Weekly ops report 2026-W47</h1>")
    staged = reports / ".weekly.2026-W48.staged"
    staged.mkdir()
    (staged / "report.html").write_text(SECRET)
    (reports / "leak.html").symlink_to(home / "settings.py")
    (home / "data_docs").mkdir()
    (home / "data_docs" / "index.html").write_text("<h1>Data Docs</h1>")
    (home / "dbt" / "target").mkdir(parents=True)  # dbt ran, but not `ops docs`
    (home / "dbt" / "target" / "manifest.json").write_text(json.dumps({"secret": SECRET}))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    env.update(
        OPS_HOME=str(home),
        AIRFLOW_HOME=str(tmp_path_factory.mktemp("airflow")),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        AIRFLOW__CORE__PLUGINS_FOLDER=str(PROJECT_ROOT / "plugins"),
        AIRFLOW__CORE__AUTH_MANAGER=(
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        AIRFLOW__API_AUTH__JWT_SECRET="test-secret-of-the-docs-plugin-test",
    )
    steps = [[s[0], s[1], str(reports)] if s[1] == "remove" else s for s in REQUESTS]
    result = subprocess.run(
        [sys.executable, "-c", SERVE, json.dumps(steps)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_plugin_registers_without_importing_the_package(served):
    assert served["errors"] == {}
    plugin = served["plugins"]["ops_warehouse_docs"]
    assert plugin["fastapi_apps"] == [{"url_prefix": "/ops", "name": "Ops Warehouse docs"}]
    assert {v["href"] for v in plugin["external_views"]} == {
        "ops/reports/",
        "ops/data-docs/",
        "ops/dbt/",
    }
    # the app is built on the first request: the plugin load imports neither it nor FastAPI
    loaded = {m.split(".")[0] for m in served["new_modules"]}
    assert not loaded & {"ops_warehouse", "fastapi", "starlette"}, loaded
    assert "ops_warehouse_docs" in loaded


def test_serves_the_reports_and_the_data_docs_to_a_signed_in_user(served):
    r = served["responses"]
    assert r["reports"]["status"] == 200 and "All reports" in r["reports"]["text"]
    assert r["reports no slash"]["status"] == 307
    assert r["reports no slash"]["location"] == "/ops/reports/"
    assert "Weekly ops report 2026-W47" in r["report"]["text"]
    assert r["report"]["type"].startswith("text/html")
    assert r["report folder"]["status"] == 404  # a folder without index.html: no listing
    assert r["data docs"]["status"] == 200 and "Data Docs" in r["data docs"]["text"]
    assert r["bearer"]["status"] == 200 and "Data Docs" in r["bearer"]["text"]
    home = r["home"]["text"]
    assert 'href="reports/"' in home and 'href="data-docs/"' in home
    assert "No dbt docs yet: run make docs" in home


def test_asks_for_airflow_login_first(served):
    r = served["responses"]
    browser = r["anonymous browser"]
    assert browser["status"] == 307
    assert browser["location"] == "/api/v2/auth/login?next=%2Fops%2Freports%2F"
    assert r["anonymous client"]["status"] == 401
    assert "Weekly ops report" not in r["anonymous client"]["text"]
    assert r["anonymous traversal"]["status"] == 401


def test_refuses_paths_outside_the_served_folders(served):
    r = served["responses"]
    for label in REFUSED:
        assert r[label]["status"] == 404, (label, r[label])
        assert SECRET not in r[label]["text"], label
    assert r["post"]["status"] == 405


def test_a_missing_folder_says_how_to_fill_it(served):
    r = served["responses"]
    assert r["dbt missing"]["status"] == 404
    assert "No dbt docs yet: run make docs" in r["dbt missing"]["text"]
    assert r["reports missing"]["status"] == 404
    assert "No reports yet: run make demo" in r["reports missing"]["text"]
    assert r["reports missing"]["type"].startswith("text/html")
    assert "No reports yet" in r["home without reports"]["text"]


def test_links_point_at_the_served_urls_when_a_base_url_is_set(tmp_path):
    base = dataclasses.replace(
        Settings.from_env(), home=tmp_path, reports_dir=tmp_path / "reports", docs_base_url=""
    )
    index = tmp_path / "data_docs" / "index.html"
    assert served_url(base, index) is None  # not set: callers keep the file path
    s = dataclasses.replace(base, docs_base_url="http://localhost:8080/ops")
    assert served_url(s, index) == "http://localhost:8080/ops/data-docs/index.html"
    report = tmp_path / "reports" / "weekly" / "2026-W47" / "report.html"
    assert served_url(s, report) == "http://localhost:8080/ops/reports/weekly/2026-W47/report.html"
    dbt = tmp_path / "dbt" / "target"
    assert served_url(s, dbt / "static_index.html") == "http://localhost:8080/ops/dbt/"
    assert served_url(s, dbt / "manifest.json") is None
    assert served_url(s, tmp_path / "warehouse" / "working.duckdb") is None


def test_the_data_docs_link_of_alerts_and_reports_follows_the_base_url(tmp_path, monkeypatch):
    from ops_warehouse.airflow import tasks as pipeline_tasks
    from ops_warehouse.pipeline import quality
    from ops_warehouse.reports import content

    index = tmp_path / "data_docs" / "index.html"
    index.parent.mkdir()
    index.write_text("<h1>Data Docs</h1>")
    monkeypatch.setattr(quality, "build_data_docs", lambda settings: index)
    s = dataclasses.replace(Settings.from_env(), home=tmp_path, docs_base_url="")
    assert pipeline_tasks.data_docs(s) == str(index)
    assert content._data_docs(s) == index.resolve().as_uri()
    s = dataclasses.replace(s, docs_base_url="https://airflow.example.com/ops")
    assert pipeline_tasks.data_docs(s) == "https://airflow.example.com/ops/data-docs/index.html"
    assert content._data_docs(s) == "https://airflow.example.com/ops/data-docs/index.html"
