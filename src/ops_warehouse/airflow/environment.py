"""The embedded Airflow: SQLite metadata and LocalExecutor under the project's home folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ops_warehouse.settings import PROJECT_ROOT, Settings


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for every `airflow` command the project runs (demo, `make up`, tests).

    Values already set by the user win, so a deployment can point Airflow elsewhere.
    """
    home = settings.home / "airflow"
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor pre-forks this many workers: match the cores, not the default 32.
        "AIRFLOW__CORE__PARALLELISM": str(os.cpu_count() or 2),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }
    env = dict(os.environ)
    for key, value in defaults.items():
        env.setdefault(key, value)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def airflow(
    args: list[str], settings: Settings, log_file: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run one `airflow` CLI command with the project's environment."""
    env = airflow_env(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    if log_file is None:
        return subprocess.run(
            [airflow_bin(), *args], env=env, check=check, capture_output=True, text=True
        )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        return subprocess.run(
            [airflow_bin(), *args],
            env=env,
            check=check,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def init_airflow(settings: Settings, log_file: Path | None = None) -> None:
    """Create/upgrade the metadata DB and the single-slot writer pool (idempotent)."""
    from ops_warehouse.airflow.dag_factory import WRITER_POOL

    airflow(["db", "migrate"], settings, log_file)
    airflow(
        ["pools", "set", WRITER_POOL, "1", "One writer of the working DuckDB at a time"],
        settings,
        log_file,
    )
