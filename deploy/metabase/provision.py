"""Connect Metabase to the published warehouse as the read-only ``bi_reader`` role.

Run once by the ``metabase-init`` service of docker-compose.yml (and safe to run again): it
waits for Metabase, creates the admin account on a fresh instance (or logs in), then adds
or updates the database "Ops Warehouse" pointing at the published PostgreSQL database with
the bi_reader credentials. Everything comes from the environment; no secret is printed.

    MB_URL                      http://metabase:3000
    MB_ADMIN_EMAIL / MB_ADMIN_PASSWORD
    WAREHOUSE_HOST / WAREHOUSE_PORT / WAREHOUSE_DB
    BI_READER_USER / BI_READER_PASSWORD
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

DATABASE_NAME = "Ops Warehouse"


def _call(base: str, method: str, path: str, body: dict | None = None, session: str = "") -> dict:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json",
                 **({"X-Metabase-Session": session} if session else {})},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read().decode()
    return json.loads(text) if text else {}


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"metabase provisioning: {name} is not set (see deploy/compose.env.example)")
    return value


def warehouse_connection() -> dict:
    return {
        "engine": "postgres",
        "name": DATABASE_NAME,
        "details": {
            "host": _env("WAREHOUSE_HOST"),
            "port": int(os.environ.get("WAREHOUSE_PORT", "5432")),
            "dbname": _env("WAREHOUSE_DB"),
            "user": _env("BI_READER_USER"),
            "password": _env("BI_READER_PASSWORD"),
            "schema-filters-type": "inclusion",
            "schema-filters-patterns": "marts",
            "ssl": False,
        },
    }


def main() -> None:
    base = os.environ.get("MB_URL", "http://metabase:3000").rstrip("/")
    deadline = time.monotonic() + 600
    while True:
        try:
            if _call(base, "GET", "/api/health").get("status") == "ok":
                break
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"metabase provisioning: {base} did not become healthy in 10 minutes")
        time.sleep(5)
    email, password = _env("MB_ADMIN_EMAIL"), _env("MB_ADMIN_PASSWORD")
    properties = _call(base, "GET", "/api/session/properties")
    if properties.get("setup-token") and not properties.get("has-user-setup"):
        session = _call(base, "POST", "/api/setup", {
            "token": properties["setup-token"],
            "user": {"email": email, "password": password, "first_name": "Ops",
                     "last_name": "Admin", "site_name": "Ops Warehouse"},
            "prefs": {"site_name": "Ops Warehouse", "allow_tracking": False},
        })["id"]
    else:
        session = _call(base, "POST", "/api/session",
                        {"username": email, "password": password})["id"]
    wanted = warehouse_connection()
    existing = _call(base, "GET", "/api/database", session=session)
    databases = existing.get("data", existing) if isinstance(existing, dict) else existing
    match = [d for d in databases if d.get("name") == DATABASE_NAME]
    if match:
        _call(base, "PUT", f"/api/database/{match[0]['id']}", wanted, session=session)
        print(f"metabase: updated database {DATABASE_NAME!r}")
    else:
        _call(base, "POST", "/api/database", wanted, session=session)
        print(f"metabase: added database {DATABASE_NAME!r} (read-only role)")


if __name__ == "__main__":
    main()
