"""LocalExecutor whose workers start with the pipeline's libraries imported.

``AIRFLOW__CORE__EXECUTOR=ops_warehouse.airflow.executor.WarehouseLocalExecutor`` (what
``make up`` sets, airflow/environment.py). It is Airflow's LocalExecutor, except that before
it forks its workers it imports dlt, Great Expectations, dbt and their dependencies
(``ops_warehouse.preload``): every task forked from a worker has them already, instead of
paying the import in each of the day's task processes. Retries, logs and the task processes
themselves are Airflow's, unchanged. With the ``spawn`` start method (no fork, nothing to
share) or ``OPS_PRELOAD=off`` it is exactly LocalExecutor.
"""

from __future__ import annotations

from airflow.executors.local_executor import LocalExecutor

from ops_warehouse import preload


class WarehouseLocalExecutor(LocalExecutor):
    def start(self) -> None:
        if self.is_mp_using_fork and preload.enabled():
            took = preload.preload_task_libraries()
            self.log.info(
                "Preloaded for the task processes: %s (%.1f s)",
                ", ".join(took),
                sum(took.values()),
            )
        super().start()
