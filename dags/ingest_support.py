"""
# ingest_support

Airflow DAG: loads the **support** source into `raw_support` of the working warehouse, once a day, for the
day that just ended in the business time zone. The helpdesk API: tickets, ticket events and time entries by their incremental export cursor, and the agents list.

Incremental and idempotent: each entity's cursor is stored with the data, a rerun of the
same interval leaves the raw tables unchanged, and a backfill re-reads its interval.
Updates the `raw_support` asset, which schedules `transform`.
"""

from ops_warehouse.airflow.dag_factory import ingest_dag

ingest_dag("support", __doc__)
