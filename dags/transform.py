"""
# transform

Airflow DAG: builds the warehouse models with dbt once all three raw assets have been
updated (`raw_marketing`, `raw_sales`, `raw_support`): staging views that type, rename
and deduplicate every raw table, with their key and accepted-value tests.

Runs in the single-slot `warehouse_writer` pool: only one task writes the working
DuckDB at a time. Updates the `staged` asset.
"""

from airflow.sdk import dag, task

from ops_warehouse.orchestration import DEFAULT_ARGS, RAW_ASSETS, STAGED, START_DATE, WRITER_POOL


@dag(
    schedule=list(RAW_ASSETS.values()),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ops-warehouse", "transform", "dbt"],
    doc_md=__doc__,
)
def transform():
    @task(pool=WRITER_POOL, outlets=[STAGED])
    def dbt_build() -> None:
        """`dbt build` of every model and test; fails the task on any failing model or test."""
        from ops_warehouse.pipeline_tasks import run_dbt

        run_dbt(["build"])

    dbt_build()


transform()
