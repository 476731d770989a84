"""
# daily_digest

The daily digest for ops leads, after each publish (the `published` asset), about the day
that publish covered, read from the **published** warehouse only (`ops_warehouse.reports`;
the contract is docs/reports.md): a short scorecard against the same weekday a week before,
anomalies, data quality. A manual run makes the digest of the day before its logical date.

The digest is rendered (HTML, text, PDF, CSV), archived under
`OPS_REPORTS_DIR/daily/<period>/` and emailed through the Airflow SMTP connection.
Without SMTP or recipients it is archived and the log says so; a failed send is retried,
recorded in `delivery.json` and never fails the task. Nothing here writes the warehouse.
"""

from airflow.sdk import dag, task

from ops_warehouse.airflow.dag_factory import PUBLISHED, REPORT_ARGS, START_DATE


@dag(
    schedule=[PUBLISHED],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=REPORT_ARGS,
    tags=["ops-warehouse", "reports"],
    doc_md=__doc__,
)
def daily_digest():
    @task
    def daily_digest(**context) -> dict:
        """The daily digest about the day the triggering publish covered."""
        from ops_warehouse.airflow.report_tasks import make_report

        return make_report("daily", context)

    daily_digest()


daily_digest()
