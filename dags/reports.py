"""
# reports

The automated reports for ops leads, read from the **published** warehouse only
(`ops_warehouse.reports`; the contract is docs/reports.md).

- `daily_digest`: after each publish (the `published` asset), about the day it published:
  short scorecard against the same weekday a week before, anomalies, data quality.
- `weekly_report`: Mondays 08:00 in the business time zone, about the last complete ISO week:
  scorecard with targets, what needs attention, charts, cost-benefit table, data quality.
  It runs on the clock rather than on the publish, so that it still goes out when the
  night's run was blocked; it then says since when the data is stale.

A run triggered by a publish makes only the digest, the Monday run only the weekly report,
a manual run both. Each report is rendered (HTML, text, PDF, CSV), archived under
`OPS_REPORTS_DIR/<weekly|daily>/<period>/` and emailed through the Airflow SMTP connection.
Without SMTP or recipients it is archived and the log says so; a failed send is retried,
recorded in `delivery.json` and never fails the task. Nothing here writes the warehouse.
"""

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from ops_warehouse.airflow.dag_factory import DEFAULT_ARGS, PUBLISHED, START_DATE
from ops_warehouse.airflow.report_tasks import on_report_failure
from ops_warehouse.settings import get_settings

# Report tasks only read the published warehouse: a failure is alerted, not written to the
# working warehouse's audit trail (that is the pipeline's, written under the writer pool).
REPORT_ARGS = {**DEFAULT_ARGS, "on_failure_callback": on_report_failure}


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 8 * * 1", timezone=get_settings().business_tz),
        assets=[PUBLISHED],
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=REPORT_ARGS,
    tags=["ops-warehouse", "reports"],
    doc_md=__doc__,
)
def reports():
    @task
    def weekly_report(**context) -> dict:
        """The weekly ops report about the last complete ISO week."""
        from ops_warehouse.airflow.report_tasks import make_report

        return make_report("weekly", context)

    @task
    def daily_digest(**context) -> dict:
        """The daily digest about the day the triggering publish covered."""
        from ops_warehouse.airflow.report_tasks import make_report

        return make_report("daily", context)

    weekly_report()
    daily_digest()


reports()
