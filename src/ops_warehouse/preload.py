"""The libraries a task process would otherwise import itself, imported once per worker.

Airflow's LocalExecutor forks every task from one of its pre-forked workers (and each worker
from the scheduler); a task then imports what its body needs: dlt for a load, Great
Expectations for a check (5–6 s and ~300 MB on its own), dbt for a build. Imported once in the
scheduler before its workers are forked (``airflow/executor.py``), they are shared
copy-on-write by every worker and every task: each task starts with them loaded. What this
saves, per task and per day, is measured in BENCHMARKS.md ("Fewer imports per task").

``OPS_PRELOAD=off`` turns it off (the scheduler then starts as fast as Airflow's own).
"""

from __future__ import annotations

import importlib
import logging
import os
import time

log = logging.getLogger(__name__)

# In the order a day's tasks need them. Nothing here starts a thread or opens a file or a
# connection at import (checked by tests/unit/test_preload.py): a fork copies a process's
# memory but only its calling thread.
TASK_LIBRARIES = (
    "pyarrow",
    "pandas",
    "duckdb",
    "sqlalchemy",
    "dlt",
    "dlt.destinations",
    "great_expectations",
    "duckdb_engine",
    "dbt.cli.main",
    "dbt.adapters.duckdb",
    "ops_warehouse.pipeline.loading",
    "ops_warehouse.pipeline.quality.gx_runner",
    # the reports (weekly report, daily digest): charts and PDF, about 1.5 s a report task
    "matplotlib.pyplot",
    "weasyprint",
)


# The dataclasses dbt validates against their JSON schema at the start of every command (the
# project, its flags, packages and selectors, the profile and the adapter's credentials). dbt
# builds each schema once per process and keeps it (dbt_common's json_schema cache); built here,
# every forked task inherits them instead of building them again: about 0.3 s of each dbt
# command's start (docs/decisions.md, "dbt's startup schemas built once").
DBT_STARTUP_SCHEMAS = (
    "dbt.contracts.project.ProjectFlags",
    "dbt.contracts.project.Project",
    "dbt.contracts.project.ProfileConfig",
    "dbt.contracts.project.PackageConfig",
    "dbt.contracts.project.Configuration",
    "dbt.contracts.selection.SelectorFile",
    "dbt.adapters.duckdb.credentials.DuckDBCredentials",
)


def enabled() -> bool:
    return os.environ.get("OPS_PRELOAD", "on").strip().lower() not in ("off", "0", "false", "no")


def preload_task_libraries() -> dict[str, float]:
    """Import TASK_LIBRARIES (those installed), then build dbt's startup schemas
    (``warm_dbt_schemas``); return the seconds each took."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # the reports draw with Agg (reports/charts.py); no GUI toolkit is ever chosen here
    os.environ.setdefault("MPLBACKEND", "Agg")
    took: dict[str, float] = {}
    for name in TASK_LIBRARIES:
        started = time.monotonic()
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an engine's adapter that this deployment does not install
            log.info("preload: %s not imported (%s)", name, exc)
            continue
        took[name] = round(time.monotonic() - started, 2)
    if "dbt.cli.main" in took:
        started = time.monotonic()
        warm_dbt_schemas()
        took["dbt startup schemas"] = round(time.monotonic() - started, 2)
    log.info(
        "preloaded %d libraries and dbt's startup schemas in %.1f s",
        len(took.keys() & set(TASK_LIBRARIES)),
        sum(took.values()),
    )
    return took


def warm_dbt_schemas() -> list[str]:
    """Build the JSON schemas of DBT_STARTUP_SCHEMAS (those importable); return their names."""
    built = []
    for path in DBT_STARTUP_SCHEMAS:
        module, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:  # another dbt version or adapter
            log.info("preload: no %s (%s)", path, exc)
            continue
        cls.json_schema()
        built.append(path)
    return built
