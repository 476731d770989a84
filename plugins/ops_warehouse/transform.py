"""Run dbt on the working warehouse, with the project's settings as dbt vars and env."""

from __future__ import annotations

import json
import os
from datetime import date

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.settings import PROJECT_ROOT, Settings, get_settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class DbtFailed(OpsWarehouseError):
    """dbt reported failing models or tests."""


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment dbt's profiles.yml reads (no secrets on the command line)."""
    from sqlalchemy.engine import make_url

    env = {
        "OPS_WAREHOUSE_PATH": str(settings.warehouse_path),
        "OPS_DBT_TARGET": settings.dbt_target,
    }
    pg = make_url(settings.postgres_url)
    env.update(
        OPS_PG_HOST=pg.host or "127.0.0.1",
        OPS_PG_PORT=str(pg.port or 5432),
        OPS_PG_USER=pg.username or "postgres",
        OPS_PG_PASSWORD=pg.password or "",
        OPS_PG_DATABASE=pg.database or "ops_warehouse",
    )
    return env


def dbt_vars(settings: Settings, as_of: date | None) -> dict[str, str]:
    out = {"reporting_currency": settings.reporting_currency, "business_tz": settings.business_tz}
    if as_of is not None:
        out["as_of_date"] = as_of.isoformat()
    return out


def dbt_invoke(
    args: list[str], *, settings: Settings | None = None, as_of: date | None = None
) -> None:
    """Run one dbt command in-process; raise DbtFailed naming what failed."""
    from dbt.cli.main import dbtRunner

    settings = settings or get_settings()
    os.environ.update(dbt_env(settings))
    target_dir = settings.home / "dbt" / "target"
    cli = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        settings.dbt_target,
        "--target-path",
        str(target_dir),
        "--log-path",
        str(settings.home / "dbt" / "logs"),
        "--vars",
        json.dumps(dbt_vars(settings, as_of)),
    ]
    result = dbtRunner().invoke(cli)
    if result.success:
        return
    failures = []
    for node in getattr(result.result, "results", None) or []:
        if str(node.status) in ("error", "fail"):
            failures.append(f"{node.node.name}: {node.status} {node.message or ''}".strip())
    detail = "; ".join(failures[:10]) or str(result.exception or "see the dbt log")
    raise DbtFailed(f"dbt {' '.join(args)} failed: {detail}")
