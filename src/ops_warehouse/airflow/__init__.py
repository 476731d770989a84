"""Airflow glue: the DAG factory, task bodies, callbacks and the embedded environment.

Nothing outside this package imports Airflow."""
