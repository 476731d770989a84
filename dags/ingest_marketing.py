"""
# ingest_marketing

Airflow DAG: loads the **marketing** source into `raw_marketing` of the working warehouse, once a day, for the
day that just ended in the business time zone. Ad performance (re-reading the last days the platforms restate), campaigns, signups, and the budget and KPI-target sheets of the landing folder.

Incremental and idempotent: each entity's cursor is stored with the data, a rerun of the
same interval leaves the raw tables unchanged, and a backfill re-reads its interval.
Updates the `raw_marketing` asset, which schedules `transform`.
"""

from ops_warehouse.airflow.dag_factory import ingest_dag

ingest_dag("marketing", __doc__)
