"""Task bodies called from the DAGs: they turn Airflow's context into plain calls."""

from __future__ import annotations

import logging
from datetime import datetime

log = logging.getLogger(__name__)


def run_load(
    source: str, interval_start: datetime | None, interval_end: datetime | None, run_id: str | None
) -> dict:
    from ops_warehouse.loading import load_source
    from ops_warehouse.sources.window import Window

    if interval_end is None:
        raise ValueError("the run has no data interval end; trigger it with a logical date")
    window = Window.of(interval_start, interval_end)
    summary = load_source(source, window, run_id=run_id or "manual")
    for name, stats in summary.entities.items():
        log.info("%s.%s: %d rows read, %d rows in raw", source, name, stats.rows_read, stats.raw_rows)
    return {
        "source": source,
        "window": [window.start.isoformat(), window.end.isoformat()],
        "seconds": round(summary.seconds, 2),
        "entities": {n: vars(s) for n, s in summary.entities.items()},
    }


def run_dbt(args: list[str]) -> None:
    from ops_warehouse.transform import dbt_invoke

    dbt_invoke(args)
