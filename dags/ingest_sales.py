"""
# ingest_sales

Airflow DAG: loads the **sales** source into `raw_sales` of the working warehouse, once a day, for the
day that just ended in the business time zone. The shop database (customers, products, orders, order items, refunds, fx rates), read through SQLAlchemy by each table's updated_at cursor.

Incremental and idempotent: each entity's cursor is stored with the data, a rerun of the
same interval leaves the raw tables unchanged, and a backfill re-reads its interval.
Updates the `raw_sales` asset, which schedules `transform`.
"""

from ops_warehouse.airflow.dag_factory import ingest_dag

ingest_dag("sales", __doc__)
