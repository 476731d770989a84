"""One report, end to end: read the published marts, render, archive, deliver."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from ops_warehouse.reports import archive, content, delivery, periods
from ops_warehouse.reports.render import Rendered, render
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReportRun:
    rendered: Rendered
    archived: archive.Archived
    delivery: delivery.Delivery
    seconds: dict[str, float]

    def summary(self) -> dict:
        c = self.rendered.content
        return {
            "report": c.kind,
            "period": c.period.key,
            "language": c.language,
            "as_of_date": c.as_of.isoformat(),
            "stale": c.stale,
            "attention": c.attention,
            "html": str(self.archived.html),
            "pdf": str(self.archived.pdf),
            "csv": str(self.archived.csv),
            "index": str(self.archived.folder.parent.parent / "index.html"),
            "delivery": self.delivery.status,
            "correction": c.correction is not None,
            "delivery_summary": self.delivery.summary,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def run_report(
    settings: Settings,
    kind: str,
    *,
    period_key: str | None = None,
    period: periods.Period | None = None,
    language: str | None = None,
    send: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> ReportRun:
    """Build, archive and (with ``send``) deliver one report; a report whose numbers went out
    before for the same period is archived but not sent again (``delivery``).

    The period is ``period``, else the one named by ``period_key`` (``2026-W47`` /
    ``2026-11-24``), else the latest complete one in the published data."""
    language = language or settings.report_language
    seconds: dict[str, float] = {}
    started = time.monotonic()
    if period is None:
        progress("reading the published warehouse")
        with content.data.published(settings) as db:
            as_of = content.data.freshness(db).as_of
        period = periods.period(kind, period_key, as_of=as_of)
    elif period.kind != kind:
        raise periods.ReportError(f"a {kind} report cannot cover a {period.kind} period")
    progress(f"querying the published marts for {period.key}")
    body = content.build(settings, period, language)
    if send:  # the period's report went out before with other numbers: say it corrects it
        delivery.mark_correction(body, archive.sends(archive.folder(settings, period)))
    seconds["query"] = time.monotonic() - started
    progress("drawing charts, rendering HTML and PDF")
    rendered = render(body)
    seconds.update(rendered.seconds)
    progress("archiving")
    started = time.monotonic()
    archived = archive.store(settings, rendered)
    seconds["archive"] = time.monotonic() - started
    progress("delivering" if send else "recording that it was not sent")
    started = time.monotonic()
    result = delivery.deliver(settings, rendered, archived, send=send)
    seconds["delivery"] = time.monotonic() - started
    archive.write_index(settings, language)  # the index shows the delivery
    return ReportRun(rendered, archived, result, seconds)


def reference_period(kind: str, reference_day: date) -> periods.Period:
    """The period a scheduled run reports on: the week that ended before the run's day, or
    the day before it."""
    if kind == "weekly":
        return periods.last_complete_week(reference_day)
    return periods.day(reference_day - timedelta(days=1))
