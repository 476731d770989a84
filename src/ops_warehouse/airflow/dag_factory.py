"""What the DAG files share: assets, the writer pool, default arguments and the ingest DAG.

Only ``airflow.sdk``, the settings and the task callbacks of ``tasks`` are
imported here: DAG files are parsed often and must stay cheap. Task bodies import the heavy
modules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, task

from ops_warehouse.airflow.report_tasks import on_report_failure
from ops_warehouse.airflow.tasks import on_task_failure, on_task_start
from ops_warehouse.settings import get_settings

# Exactly one task writes the working DuckDB at a time: every writer runs in this pool,
# which has a single slot (created by `make airflow-init` / `ops airflow-init`).
WRITER_POOL = "warehouse_writer"

RAW_ASSETS = {
    source: Asset(name=f"raw_{source}", uri=f"ops://warehouse/raw_{source}")
    for source in ("marketing", "sales", "support")
}
# Updated when a validated warehouse has been published (what reports and BI tools read).
PUBLISHED = Asset(name="published", uri="ops://warehouse/published")

START_DATE = datetime(2024, 1, 1)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    # Every task masks the settings' secrets in its log.
    "on_execute_callback": on_task_start,
    # A task that fails for good is recorded in audit.pipeline_runs and alerted.
    "on_failure_callback": on_task_failure,
}

# Report tasks only read the published warehouse: a failure is alerted, not written to the
# working warehouse's audit trail (that is the pipeline's, written under the writer pool).
REPORT_ARGS: dict[str, Any] = {**DEFAULT_ARGS, "on_failure_callback": on_report_failure}


def daily() -> CronDataIntervalTimetable:
    """Midnight to midnight in the business time zone; a run covers one complete day."""
    return CronDataIntervalTimetable("0 0 * * *", timezone=get_settings().business_tz)


def ingest_dag(source: str, doc_md: str | None):
    """The DAG that loads one source system into ``raw_<source>``."""

    @dag(
        dag_id=f"ingest_{source}",
        schedule=daily(),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["ops-warehouse", "ingest", source],
        doc_md=doc_md,
    )
    def ingest():
        @task(task_id=f"load_{source}", pool=WRITER_POOL, outlets=[RAW_ASSETS[source]])
        def load(
            data_interval_start=None, data_interval_end=None, run_id=None, outlet_events=None
        ) -> dict:
            """Load every entity of the source for the run's data interval into raw."""
            from ops_warehouse.airflow.tasks import run_load

            summary = run_load(source, data_interval_start, data_interval_end, run_id)
            # transform reads the as-of date of what was loaded from the asset event
            outlet_events[RAW_ASSETS[source]].extra = {"as_of_date": summary["as_of_date"]}
            return summary

        load()

    return ingest()
