"""The report DAGs' task bodies: which period a run reports on, then ``build.run_report``.

- ``daily_digest`` runs on the ``published`` asset (the night's publish) and reports on the
  as-of date that publish recorded in its event.
- ``weekly_report`` runs Mondays 08:00 (business time zone) and reports on the ISO week that
  ended before it, from whatever was published last: when the night's run was blocked, the
  report goes out anyway and says since when the data is stale.
- A manual run (``airflow dags test``, the demo) reports as of its logical date.

Only light imports here: the DAG file imports this module when it is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

log = logging.getLogger(__name__)


def _events_as_of(context: Mapping[str, Any]) -> date | None:
    """The newest as-of date among the publish events that triggered the run."""
    found = [
        (event.extra or {}).get("as_of_date")
        for events in (context.get("triggering_asset_events") or {}).values()
        for event in events
    ]
    found = [d for d in found if d]
    return date.fromisoformat(max(found)) if found else None


def _reference_day(context: Mapping[str, Any]) -> date:
    """The run's day in the business time zone (logical date, else when it was due)."""
    from zoneinfo import ZoneInfo

    from ops_warehouse.settings import get_settings

    dag_run = context.get("dag_run")
    when: datetime | None = context.get("logical_date") or getattr(dag_run, "run_after", None)
    if when is None:
        raise ValueError("the run has neither a logical date nor a run_after time")
    return when.astimezone(ZoneInfo(get_settings().business_tz)).date()


def make_report(kind: str, context: Mapping[str, Any]) -> dict:
    """Build, archive and send one report for the run (skipped when nothing is published)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from ops_warehouse.reports import periods
    from ops_warehouse.reports.build import reference_period, run_report
    from ops_warehouse.settings import get_settings

    as_of = _events_as_of(context) if kind == "daily" else None
    period = periods.day(as_of) if as_of else reference_period(kind, _reference_day(context))
    from ops_warehouse.reports.periods import NothingPublished

    try:
        run = run_report(get_settings(), kind, period=period, progress=log.info)
    except NothingPublished as exc:
        # a new deployment's first Monday can come before its first publish
        raise AirflowSkipException(f"nothing to report yet: {exc}") from exc
    summary = run.summary()
    log.info("%s report %s: %s", kind, period.key, summary["html"])
    if summary["stale"]:
        log.warning("%s", summary["stale"])
    log.info("delivery: %s", summary["delivery_summary"])
    return summary


def on_report_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of the report tasks: alert the data engineers. Unlike the
    pipeline's callback it records nothing in the working warehouse: reports only read."""
    from ops_warehouse.airflow.tasks import alert_only

    alert_only(context, "report failed")
