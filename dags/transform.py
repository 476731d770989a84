"""
# transform

Airflow DAG: write → audit → publish, once all three raw assets have been updated
(`raw_marketing`, `raw_sales`, `raw_support`), as of the oldest day they loaded.

1. `validate_raw`: Great Expectations suites over the raw layer; starts the run's row in
   `audit.pipeline_runs`.
2. `dbt_build`: staging, intermediate and marts in the working warehouse, with dbt's tests.
3. `validate_marts`: the staging and marts suites (keys after dedup; identities, rates,
   reconciliation down to staging), then the completeness gate.
4. `publish`: only now do readers see the new marts and audit trail (an atomic file swap
   on DuckDB, a schema swap on PostgreSQL). Updates the `published` asset.
5. `data_docs`, beside `publish`: brings the Data Docs site up to date with the run's
   results (its path is printed in the log). It runs whatever the checks decided, and it
   never decides the run.

A blocking check fails its task at once (no retry: the data would not change), after its
results are in `audit.dq_results`, the run is marked `blocked`, the Data Docs are rebuilt and
the data engineers are alerted; the published warehouse stays as it was. Warnings are
recorded and alerted, and the run goes on. Every task but `data_docs`, which reads only Great
Expectations' result files, runs in the single-slot `warehouse_writer` pool.
"""

from airflow.sdk import dag, task

from ops_warehouse.airflow.dag_factory import (
    DEFAULT_ARGS,
    PUBLISHED,
    RAW_ASSETS,
    START_DATE,
    WRITER_POOL,
)
from ops_warehouse.airflow.tasks import on_docs_failure


@dag(
    schedule=list(RAW_ASSETS.values()),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ops-warehouse", "transform", "dbt", "quality"],
    doc_md=__doc__,
)
def transform():
    @task(pool=WRITER_POOL)
    def validate_raw(**context) -> dict:
        """Check the raw layer before dbt reads it; blocking failures fail the task."""
        from ops_warehouse.airflow.tasks import run_validation

        return run_validation(["raw"], context)

    @task(pool=WRITER_POOL)
    def dbt_build(validated: dict, **context) -> dict:
        """`dbt build` of every model and test as of the run's as-of date."""
        from ops_warehouse.airflow.tasks import run_dbt_build

        return run_dbt_build(context)

    @task(pool=WRITER_POOL)
    def validate_marts(built: dict, **context) -> dict:
        """Check the staging models and marts dbt just built, rebuild the Data Docs; blocking
        failures fail the task."""
        from ops_warehouse.airflow.tasks import run_validation

        return run_validation(["staging", "marts"], context)

    @task(trigger_rule="all_done", on_failure_callback=on_docs_failure)
    def data_docs(**context) -> dict:
        """Rebuild the Data Docs with the run's results, beside publish."""
        from ops_warehouse.airflow.tasks import run_data_docs

        return run_data_docs(context)

    @task(pool=WRITER_POOL, outlets=[PUBLISHED])
    def publish(validated: dict, **context) -> dict:
        """Make the validated marts and the audit trail what readers see."""
        from ops_warehouse.airflow.tasks import run_publish

        summary = run_publish(context)
        context["outlet_events"][PUBLISHED].extra = summary
        return summary

    checked = validate_marts(dbt_build(validate_raw()))
    publish(checked)
    # after the marts' checks, passed or not (a blocked run's docs show why it blocked)
    checked >> data_docs()


transform()
