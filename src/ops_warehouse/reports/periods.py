"""Which week or day a report is about."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from ops_warehouse.errors import OpsWarehouseError

KINDS = ("weekly", "daily")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class ReportError(OpsWarehouseError):
    """A report cannot be built as asked (bad period, no published warehouse …)."""


class NothingPublished(ReportError):
    """The pipeline has not published anything yet: there is nothing to report on."""


@dataclass(frozen=True)
class Period:
    """The days one report is about: an ISO week (weekly) or one day (daily)."""

    kind: str
    start: date
    end: date  # inclusive

    @property
    def key(self) -> str:
        """The period's name in the archive: ``2026-W47`` or ``2026-11-24``."""
        if self.kind == "weekly":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return self.start.isoformat()

    @property
    def comparison_start(self) -> date:
        """The period it is compared with: the week before, or the same weekday a week before."""
        return self.start - timedelta(days=7)


def week(key: str) -> Period:
    """The ISO week named ``YYYY-Www``."""
    match = _WEEK.match(key.strip())
    if not match:
        raise ReportError(f"week {key!r} is not an ISO week like 2026-W47")
    try:
        start = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise ReportError(f"week {key!r} does not exist ({exc})") from None
    return Period("weekly", start, start + timedelta(days=6))


def day(value: str | date) -> Period:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise ReportError(f"day {value!r} is not a date like 2026-11-24") from None
    return Period("daily", value, value)


def last_complete_week(before: date) -> Period:
    """The last ISO week that ended before the day ``before`` (on a Monday: the week just
    ended)."""
    yesterday = before - timedelta(days=1)
    return latest_complete_week(yesterday)


def week_of(any_day: date) -> Period:
    start = any_day - timedelta(days=any_day.weekday())
    return Period("weekly", start, start + timedelta(days=6))


def latest_complete_week(as_of: date) -> Period:
    """The last ISO week whose every day is at or before the as-of date."""
    return week_of(as_of) if as_of.weekday() == 6 else week_of(as_of - timedelta(days=7))


def period(kind: str, key: str | None, *, as_of: date) -> Period:
    """The period of a report: the one named by ``key``, else the latest complete one in the
    published data (as of ``as_of``)."""
    if kind not in KINDS:
        raise ReportError(f"unknown report {kind!r}; expected one of {KINDS}")
    if key is None:
        return latest_complete_week(as_of) if kind == "weekly" else day(as_of)
    return week(key) if kind == "weekly" else day(key)
