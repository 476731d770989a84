"""Queries of the published warehouse: the marts and audit trail readers see.

DuckDB: ``settings.published_path`` opened read-only (a publish swaps the file; an open
connection keeps its snapshot). PostgreSQL: ``settings.published_postgres_url``. All queries
of one report run on one connection, so one report reads one snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ops_warehouse.reports.periods import NothingPublished, Period, ReportError
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.databases import published_location
from ops_warehouse.warehouse.engines import Connection, PublishedMissing, engine

# Trailing periods an anomaly is measured against, and the charts' span (docs/reports.md).
TRAILING_WEEKS = 8
RETENTION_COHORTS = 12
SUPPORT_KPIS = ("sla_attainment", "csat", "median_first_reply_minutes")


def _rows(db: Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in db.records(sql, params)]


def _plain(value: Any) -> Any:
    # money columns come back as Decimal; reports compute and format floats
    return float(value) if isinstance(value, Decimal) else value


@contextmanager
def published(settings: Settings) -> Iterator[Connection]:
    """The published warehouse, read-only; a clear error when there is none yet."""
    try:
        with engine(settings).published() as db:
            yield db
    except PublishedMissing as exc:
        raise NothingPublished(
            f"{exc}: run the pipeline first (`make demo`); the published warehouse is "
            f"{published_location(settings)}"
        ) from exc


@dataclass(frozen=True)
class Freshness:
    """How current the published data is."""

    as_of: date  # the last complete day in the published marts
    published_at: datetime | None  # when that publish finished


def freshness(db: Connection) -> Freshness:
    """The as-of date of the last published run (``audit.pipeline_runs``), or the last day of
    ``kpi_daily`` when the audit trail has none (a warehouse published by hand)."""
    run = _rows(
        db,
        "select as_of_date, finished_at from audit.pipeline_runs "
        "where status = 'published' and as_of_date is not null "
        "order by finished_at desc limit 1",
    )
    if run:
        return Freshness(run[0]["as_of_date"], run[0]["finished_at"])
    last = _rows(db, "select max(date_day) as as_of from marts.kpi_daily")[0]["as_of"]
    if last is None:
        raise ReportError("the published marts are empty: kpi_daily has no rows")
    return Freshness(last, None)


def scorecard(db: Connection, grain: str, period_start: date) -> list[dict[str, Any]]:
    """Every KPI of one period of kpi_scorecard."""
    return _rows(
        db,
        "select kpi, value, previous_value, change_pct, target, target_attainment, "
        "higher_is_better, status from marts.kpi_scorecard "
        "where period_grain = ? and period_start = ? order by kpi",
        [grain, period_start],
    )


def kpi_history(
    db: Connection, grain: str, first: date, last: date
) -> dict[str, dict[date, float | None]]:
    """KPI values of the periods starting between two dates: ``{kpi: {period_start: value}}``."""
    out: dict[str, dict[date, float | None]] = {}
    for row in _rows(
        db,
        "select kpi, period_start, value from marts.kpi_scorecard "
        "where period_grain = ? and period_start between ? and ? order by period_start",
        [grain, first, last],
    ):
        out.setdefault(row["kpi"], {})[row["period_start"]] = row["value"]
    return out


def daily_revenue_and_spend(db: Connection, period: Period) -> list[dict[str, Any]]:
    """kpi_daily's net revenue and spend over the 8 weeks ending with the period."""
    first = period.end - timedelta(days=7 * TRAILING_WEEKS - 1)
    return _rows(
        db,
        "select date_day, net_revenue, spend from marts.kpi_daily "
        "where date_day between ? and ? order by date_day",
        [first, period.end],
    )


def channel_months(db: Connection, months: Sequence[date]) -> list[dict[str, Any]]:
    """channel_roi_monthly for some months, paid channels first by spend."""
    marks = ", ".join("?" for _ in months)
    return _rows(
        db,
        "select month_start, channel, spend, planned_spend, budget_variance, "
        "budget_utilization, planned_spend_to_date, projected_spend, new_customers, cac, "
        "new_customer_net_revenue_90d, roas_90d, roi_90d, is_window_complete "
        f"from marts.channel_roi_monthly where month_start in ({marks}) "
        "order by month_start desc, spend desc, channel",
        list(months),
    )


def retention(db: Connection, last_month: date) -> list[dict[str, Any]]:
    """retention_cohorts of the last 12 cohorts up to a month."""
    return _rows(
        db,
        "select cohort_month, months_since_first_order, cohort_size, retention_rate "
        "from marts.retention_cohorts where cohort_month in ("
        "  select distinct cohort_month from marts.retention_cohorts where cohort_month <= ? "
        f"  order by cohort_month desc limit {RETENTION_COHORTS}) "
        "order by cohort_month, months_since_first_order",
        [last_month],
    )


# The check results of the transform runs whose as-of date is in a period (start, end).
PERIOD_RESULTS = (
    "from audit.dq_results r join audit.pipeline_runs p "
    "on p.dag_id = r.dag_id and p.run_id = r.run_id "
    "where p.dag_id = 'transform' and p.as_of_date between ? and ?"
)


def data_quality(db: Connection, period: Period) -> dict[str, Any]:
    """Checks of the transform runs covering the period's days, and the rows the ingest runs
    of those days quarantined (replayed ones included: they were set aside that day).

    Runs are matched on their as-of date; a run that was blocked is in the published audit
    trail once a later run published."""
    runs = _rows(
        db,
        "select dag_id, run_id, as_of_date, status, message from audit.pipeline_runs "
        "where dag_id = 'transform' and as_of_date between ? and ? order by started_at",
        [period.start, period.end],
    )
    checks = _rows(
        db,
        "select "
        "  count(*) as checks_run, "
        "  coalesce(sum(case when not r.success and r.severity = 'block' then 1 else 0 end), 0)"
        "    as checks_failed, "
        "  coalesce(sum(case when not r.success and r.severity <> 'block' then 1 else 0 end), 0)"
        "    as checks_warned " + PERIOD_RESULTS,
        [period.start, period.end],
    )[0]
    # by the as-of date of the run that set the rows aside, not by when it ran: a night's
    # quarantine belongs to the day it loaded, even when the run finished after midnight
    quarantined = _rows(
        db,
        "select source, count(*) as rows_quarantined from audit.quarantine "
        "where as_of_date between ? and ? group by source order by source",
        [period.start, period.end],
    )
    failing = _rows(
        db,
        'select distinct r.suite, r."check", r.severity ' + PERIOD_RESULTS + " and not r.success "
        'order by r.severity, r.suite, r."check"',
        [period.start, period.end],
    )
    return {
        "runs": runs,
        **{k: int(v or 0) for k, v in checks.items()},
        "quarantined": quarantined,
        "failing": failing,
    }
