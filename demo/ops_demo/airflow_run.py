"""Run DAGs one after another through Airflow in one process (`dag.test`), for `make demo`.

Same code path as `airflow dags test`, but Airflow is imported and the DAG folder parsed
once for all DAGs instead of once per DAG.

    python -m ops_demo.airflow_run 2026-11-23 ingest_marketing ingest_sales …
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime


def main(argv: list[str]) -> int:
    from airflow.dag_processing.dagbag import DagBag

    logical_date = datetime.fromisoformat(argv[0]).replace(tzinfo=UTC)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", flush=True)
        return 2
    for dag_id in argv[1:]:
        started = time.monotonic()
        run = bag.get_dag(dag_id).test(logical_date=logical_date)
        state = str(getattr(run, "state", "unknown"))
        print(f"OPS-DAG-RESULT {dag_id} {state} {time.monotonic() - started:.1f}", flush=True)
        if state != "success":
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
