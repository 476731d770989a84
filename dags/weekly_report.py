"""
# weekly_report

The weekly ops report for ops leads, about the last complete ISO week, read from the
**published** warehouse only (`ops_warehouse.reports`; the contract is docs/reports.md):
scorecard with targets, what needs attention, charts, cost-benefit table, data quality.

Mondays 08:00 in the business time zone. It runs on the clock rather than on the publish,
so that it still goes out when the night's run was blocked; it then says since when the
data is stale. A manual run makes the report of the week before its logical date.

The report is rendered (HTML, text, PDF, CSV), archived under
`OPS_REPORTS_DIR/weekly/<period>/` and emailed through the Airflow SMTP connection.
Without SMTP or recipients it is archived and the log says so; a failed send is retried,
recorded in `delivery.json` and never fails the task. Nothing here writes the warehouse.
"""

from airflow.sdk import CronTriggerTimetable, dag, task

from ops_warehouse.airflow.dag_factory import REPORT_ARGS, START_DATE
from ops_warehouse.settings import get_settings


@dag(
    schedule=CronTriggerTimetable("0 8 * * 1", timezone=get_settings().business_tz),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=REPORT_ARGS,
    tags=["ops-warehouse", "reports"],
    doc_md=__doc__,
)
def weekly_report():
    @task
    def weekly_report(**context) -> dict:
        """The weekly ops report about the last complete ISO week."""
        from ops_warehouse.airflow.report_tasks import make_report

        return make_report("weekly", context)

    weekly_report()


weekly_report()
