"""Task bodies called from the DAGs: they turn Airflow's context into plain calls."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

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
        log.info(
            "%s.%s: %d rows read, %d rows in raw", source, name, stats.rows_read, stats.raw_rows
        )
    return {
        "source": source,
        "as_of_date": window.last_day.isoformat(),
        "window": [window.start.isoformat(), window.end.isoformat()],
        "seconds": round(summary.seconds, 2),
        "entities": {n: vars(s) for n, s in summary.entities.items()},
    }


def as_of_from_events(triggering_asset_events, data_interval_end: datetime | None) -> date:
    """The as-of date a transform run covers.

    Asset-triggered: the oldest of the newest as-of dates each raw asset reported (the
    marts must not run ahead of the source that is furthest behind). Manual or `dags test`
    runs have no events: the day before their data interval end.
    """
    latest: dict[str, str] = {}
    for asset, events in (triggering_asset_events or {}).items():
        for event in events:
            value = (event.extra or {}).get("as_of_date")
            if value and value > latest.get(str(asset), ""):
                latest[str(asset)] = value
    if latest:
        return date.fromisoformat(min(latest.values()))
    if data_interval_end is None:
        raise ValueError("transform needs triggering asset events or a data interval")
    return (data_interval_end - timedelta(microseconds=1)).date()


def run_transform(triggering_asset_events, data_interval_end: datetime | None) -> dict:
    from ops_warehouse.transform import dbt_invoke

    as_of = as_of_from_events(triggering_asset_events, data_interval_end)
    log.info("dbt build as of %s", as_of)
    dbt_invoke(["build"], as_of=as_of)
    return {"as_of_date": as_of.isoformat()}
