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
    def dbt_build(triggering_asset_events=None, data_interval_end=None) -> dict:
        """`dbt build` of every model and test as of the loaded day; fails on any failure."""
        from ops_warehouse.pipeline_tasks import run_transform

        return run_transform(triggering_asset_events, data_interval_end)

    dbt_build()


transform()
