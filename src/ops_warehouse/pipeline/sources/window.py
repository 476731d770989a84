"""Which slice of a source one run reads: the run's data interval plus the stored cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Window:
    """The run's data interval, [start, end) in UTC.

    Airflow 3 can hand a manual or ``dags test`` run a zero-length interval
    (start == end); such a run covers the day that ends at ``end``.
    """

    start: datetime
    end: datetime

    @classmethod
    def of(cls, start: datetime | None, end: datetime) -> Window:
        end = end.astimezone(UTC)
        start = end - timedelta(days=1) if start is None else start.astimezone(UTC)
        if start >= end:
            start = end - timedelta(days=1)
        return cls(start, end)

    @property
    def last_day(self) -> date:
        """The last complete day the run covers (the as-of date)."""
        return (self.end - timedelta(microseconds=1)).date()


def cursor_lower_bound(state: dict[str, Any], window: Window) -> datetime | None:
    """Where a cursor read starts: the stored cursor, or the interval start for a backfill.

    The bound is inclusive: rows at exactly the cursor are read again and the merge on
    the primary key makes that harmless. ``None`` means everything (the first load).
    """
    stored = state.get("cursor")
    if stored is None:
        return None
    cursor = datetime.fromisoformat(stored)
    # A backfill of an interval older than the cursor re-reads that interval only.
    return min(cursor, window.start) if cursor >= window.end else cursor


def advance_cursor(state: dict[str, Any], table: pa.Table, column: str) -> None:
    """Move the stored cursor to the newest value loaded; never backwards."""
    if table.num_rows == 0:
        return
    newest = pc.max(table[column]).as_py()
    if isinstance(newest, date) and not isinstance(newest, datetime):
        newest = datetime(newest.year, newest.month, newest.day, tzinfo=UTC)
    stored = state.get("cursor")
    if stored is None or newest > datetime.fromisoformat(stored):
        state["cursor"] = newest.isoformat()
