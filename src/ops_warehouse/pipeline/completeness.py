"""The completeness gate: a new build never publishes less than the published warehouse holds.

Every check of the quality suites looks at one build on its own, so a build made from a raw
layer that lost history (a lost warehouse, a partial load) passes them all: its marts are
consistent, just short. This gate compares the new marts with the published ones:

- ``days_covered_never_shrink``: the days of ``kpi_daily`` start no later and end no earlier
  than the published ones;
- ``row_count_never_drops``: the facts' and dimensions' rows drop by at most
  ``OPS_ROW_DROP_TOLERANCE`` (sources delete rarely; a share above that is a lost load);
- ``closed_month_totals_unchanged``: months that ended more than ``OPS_CLOSED_PERIOD_DAYS``
  before the as-of date (older than every restatement window: late refunds, ad restatements)
  keep their totals within ``OPS_CLOSED_PERIOD_TOLERANCE``.

All are blocking. With nothing published yet there is nothing to compare: the first publish
passes with a result that says so. Both sides are profiled by the same engine-neutral
queries, so the gate reads the same on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ops_warehouse.pipeline.quality.results import CheckResult
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.engines import PublishedMissing, engine

log = logging.getLogger(__name__)

DAILY_MART = "kpi_daily"
# Facts and dimensions whose rows stand for source records (aggregates are left out: their
# rows follow from these).
COUNTED_MARTS = (
    "fct_orders",
    "fct_tickets",
    "fct_ad_performance_daily",
    "dim_customers",
    "dim_campaigns",
)
# kpi_daily's additive measures whose monthly totals close with the month.
CLOSED_MEASURES = ("net_revenue", "gross_revenue", "orders", "spend", "tickets_created")

Query = Callable[[str], Sequence[tuple]]


@dataclass(frozen=True)
class MartsProfile:
    """What a set of marts covers: its days, its rows and its monthly totals."""

    first_day: date | None
    last_day: date | None
    days: int
    rows: dict[str, int]
    monthly: dict[tuple[date, str], Decimal]


def profile(query: Query) -> MartsProfile:
    """Profile the ``marts`` schema that ``query`` reads."""
    first, last, days = query(
        f"select min(date_day), max(date_day), count(*) from marts.{DAILY_MART}"
    )[0]
    rows = {name: int(query(f"select count(*) from marts.{name}")[0][0]) for name in COUNTED_MARTS}
    sums = ", ".join(f"sum({m})" for m in CLOSED_MEASURES)
    monthly: dict[tuple[date, str], Decimal] = {}
    for month, *totals in query(
        f"select cast(date_trunc('month', date_day) as date), {sums} from marts.{DAILY_MART} group by 1"
    ):
        for measure, total in zip(CLOSED_MEASURES, totals, strict=True):
            monthly[(_as_date(month), measure)] = Decimal(str(total or 0))
    return MartsProfile(_as_date(first), _as_date(last), int(days), rows, monthly)


def _as_date(value: Any) -> date | None:
    if value is None or type(value) is date:
        return value
    return value.date() if hasattr(value, "date") else date.fromisoformat(str(value)[:10])


def compare(
    published: MartsProfile | None, new: MartsProfile, as_of: date, settings: Settings
) -> list[CheckResult]:
    """The gate's results for a new build against the published marts (None: nothing yet)."""
    if published is None:
        return [
            CheckResult(
                suite="marts.completeness",
                check="compared_with_published",
                column=None,
                severity="block",
                success=True,
                observed_value="first publish: nothing published yet to compare with",
            )
        ]
    return [
        _days_covered(published, new),
        *(_row_count(name, published, new, settings) for name in COUNTED_MARTS),
        *(_closed_totals(measure, published, new, as_of, settings) for measure in CLOSED_MEASURES),
    ]


def _days_covered(published: MartsProfile, new: MartsProfile) -> CheckResult:
    shrank = (
        new.days < published.days
        or new.first_day is None
        or (published.first_day is not None and new.first_day > published.first_day)
        or (published.last_day is not None and new.last_day < published.last_day)
    )
    return CheckResult(
        suite=f"{DAILY_MART}.completeness",
        check="days_covered_never_shrink",
        column="date_day",
        severity="block",
        success=not shrank,
        unexpected_count=max(published.days - new.days, 0) if shrank else 0,
        observed_value=(
            f"published {published.first_day}..{published.last_day} ({published.days} days), "
            f"new {new.first_day}..{new.last_day} ({new.days} days)"
        ),
    )


def _row_count(
    name: str, published: MartsProfile, new: MartsProfile, settings: Settings
) -> CheckResult:
    before, after = published.rows.get(name, 0), new.rows.get(name, 0)
    dropped = before - after
    ok = dropped <= before * settings.row_drop_tolerance
    return CheckResult(
        suite=f"{name}.completeness",
        check="row_count_never_drops",
        column=None,
        severity="block",
        success=ok,
        unexpected_count=max(dropped, 0),
        observed_value=(
            f"published {before} rows, new {after}"
            + (f" ({-dropped / before:+.1%})" if before and dropped else "")
            + f"; tolerance {settings.row_drop_tolerance:.1%} (OPS_ROW_DROP_TOLERANCE)"
        ),
    )


def closed_before(as_of: date, settings: Settings) -> date:
    """The first day of the first month still open: every earlier month ended at least
    ``closed_period_days`` before the as-of date."""
    horizon = as_of - timedelta(days=settings.closed_period_days)
    month_end_passed = horizon + timedelta(days=1)
    return month_end_passed.replace(day=1)


def _closed_totals(
    measure: str, published: MartsProfile, new: MartsProfile, as_of: date, settings: Settings
) -> CheckResult:
    open_from = closed_before(as_of, settings)
    tolerance = Decimal(str(settings.closed_period_tolerance))
    moved = []
    for (month, m), before in sorted(published.monthly.items()):
        if m != measure or month >= open_from:
            continue
        after = new.monthly.get((month, measure), Decimal(0))
        # a cent of slack: money is rounded to cents in the marts
        if abs(after - before) > abs(before) * tolerance + Decimal("0.01"):
            change = f" ({(after - before) / before:+.1%})" if before else ""
            moved.append(f"{month:%Y-%m}: published {before}, new {after}{change}")
    return CheckResult(
        suite=f"{DAILY_MART}.completeness",
        check="closed_month_totals_unchanged",
        column=measure,
        severity="block",
        success=not moved,
        unexpected_count=len(moved),
        observed_value=(
            "; ".join(moved[:3]) + (f"; … {len(moved) - 3} more" if len(moved) > 3 else "")
            if moved
            else f"months before {open_from:%Y-%m} unchanged within "
            f"{settings.closed_period_tolerance:.1%} (OPS_CLOSED_PERIOD_TOLERANCE)"
        ),
    )


def _working_query(settings: Settings) -> Query:
    from ops_warehouse.warehouse.queries import query_models

    return lambda sql: query_models(settings, sql)


def published_profile(settings: Settings) -> MartsProfile | None:
    """The published marts' profile; None when nothing has been published yet."""
    try:
        with engine(settings).published() as db:
            if not db.has_table("marts", DAILY_MART):
                return None
            return profile(db.fetch)
    except PublishedMissing:
        return None


def run_gate(settings: Settings, as_of: date) -> list[CheckResult]:
    """The completeness results of the working warehouse's marts as of ``as_of``."""
    published = published_profile(settings)
    new = profile(_working_query(settings))
    results = compare(published, new, as_of, settings)
    log.info(
        "completeness: %d check(s), %d failed",
        len(results),
        sum(not r.success for r in results),
    )
    return results
