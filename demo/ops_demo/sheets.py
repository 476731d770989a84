"""The ops team's landing sheets: monthly ad budgets and KPI targets.

Plans are made the way a team makes them: from what the business really does, give or
take. A month's plan is its simulated outcome (the simulation always runs at least to
the end of the last planned month) times a factor drawn from a stream of its own, so a
month's numbers never depend on the clock, and some months beat their plan while others
miss it.

Files of each kind: the original plan, dated on the world's start and covering every
month up to two months after ``until``; and quarterly revisions (dated 15 Feb, May, Aug
and Nov, so the newest is 0-90 days, ~45 days on average, before ``until``), each
changing the numbers of three months (its own month and the next two), so that "the
newest file wins" has work to do. Revisions are dated on a fixed calendar: moving the
clock adds sheets, never removes or rewrites one (the original plan only gains months).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from ops_demo.genesis import BUDGET_FX, CHANNELS, DAY, Stream, rng
from ops_demo.simulation import NEVER, Simulation

PLANNED_MONTHS_AHEAD = 2
# the team revises the plan of the current and the next two months once a quarter
REVISION_MONTHS = (2, 5, 8, 11)
REVISION_DAY = 15
REVISED_MONTHS = 3

# kpi -> (higher is better?, decimals); None = neither (spend is a plan, not a goal)
KPIS: dict[str, tuple[bool | None, int]] = {
    "spend": (None, 2),
    "new_customers": (True, 0),
    "blended_cac": (False, 2),
    "orders": (True, 0),
    "net_revenue": (True, 2),
    "gross_margin_pct": (True, 4),
    "aov": (True, 2),
    "sla_attainment": (True, 4),
    "csat": (True, 4),
    "median_first_reply_minutes": (False, 1),
    "cost_per_ticket": (False, 2),
}


@dataclass(frozen=True)
class Sheet:
    name: str  # file name
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


def last_planned_day(until: date) -> date:
    """The last day of the month ``PLANNED_MONTHS_AHEAD`` months after ``until``."""
    return _add_months(until.replace(day=1), PLANNED_MONTHS_AHEAD + 1) - timedelta(days=1)


def _add_months(first: date, months: int) -> date:
    """The first day of the month ``months`` after the month of ``first``."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _months(first: date, last: date) -> list[date]:
    """The first days of the months from ``first``'s to ``last``'s."""
    out, m = [], first.replace(day=1)
    while m <= last:
        out.append(m)
        m = _add_months(m, 1)
    return out


def _nice(value: float) -> float:
    """Round like a person filling a sheet: three significant digits."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    step = 10.0 ** (math.floor(math.log10(value)) - 2)
    return round(round(value / step) * step, 2)


def _month_index(ts: np.ndarray) -> pd.PeriodIndex:
    return pd.to_datetime(ts, unit="s").to_period("M")


def _by_month(values: np.ndarray, ts: np.ndarray) -> pd.core.groupby.SeriesGroupBy:
    return pd.Series(values, index=_month_index(ts)).groupby(level=0)


def monthly_actuals(sim: Simulation) -> pd.DataFrame:
    """What really happened each month (USD): the basis of every plan. Approximates the
    marts' definitions closely enough for targets; lifecycles are taken as final."""
    o, t = sim.orders, sim.tickets
    recognized = o["cancelled_ts"] == NEVER
    gross = (o["subtotal"] - o["discount"]) * o["rate"] / 100
    refund_order = sim.refunds["order_no"] - 1
    refunded = np.bincount(
        refund_order,
        minlength=len(gross),
        weights=sim.refunds["amount"] * o["rate"][refund_order] / 100,
    )
    net = gross - np.minimum(refunded, gross)
    cogs = np.where(o["refunded_ts"] < NEVER, 0, o["cogs_usd"] / 100)
    orders = pd.DataFrame(
        {
            "month": _month_index(o["ordered_ts"]),
            "customer": o["customer_no"],
            "ts": o["ordered_ts"],
            "gross": gross,
            "net": net,
            "margin": net - cogs,
        }
    )[recognized]
    first = orders.sort_values(["ts"]).drop_duplicates("customer")
    by_month = orders.groupby("month").agg(
        orders=("gross", "size"),
        gross=("gross", "sum"),
        net_revenue=("net", "sum"),
        margin=("margin", "sum"),
    )
    by_month["new_customers"] = first.groupby("month").size()
    ads_day = sim.calendar.start_ts + sim.ads["day"] * DAY
    by_month["spend"] = _by_month(sim.ads["spend_usd"], ads_day).sum()

    created = pd.DataFrame(
        {
            "month": _month_index(t["created_ts"]),
            "breached": t["breached"],
            "reply_min": (t["first_reply_ts"] - t["created_ts"]) / 60,
        }
    )
    by_month["sla_attainment"] = 1 - created.groupby("month")["breached"].mean()
    by_month["median_first_reply_minutes"] = created.groupby("month")["reply_min"].median()
    e = sim.events
    rated = e["score"] >= 0
    by_month["csat"] = _by_month(e["score"][rated] == 0, e["ts"][rated]).mean()
    solved = _by_month(np.ones(len(t["solved_ts"])), t["solved_ts"]).sum()
    te = sim.time_entries
    fx = np.array([BUDGET_FX[c] for c in te["currency"]]) if len(te["currency"]) else np.zeros(0)
    cost = _by_month(
        te["minutes"] / 60 * te["cost_cents_per_hour"] / 100 * fx, te["logged_ts"]
    ).sum()
    by_month["cost_per_ticket"] = cost / solved
    by_month["blended_cac"] = by_month["spend"] / by_month["new_customers"]
    by_month["gross_margin_pct"] = by_month["margin"] / by_month["net_revenue"]
    by_month["aov"] = by_month["gross"] / by_month["orders"]
    return by_month


def monthly_spend_by_account(sim: Simulation) -> pd.DataFrame:
    """Ad spend per month and channel in the ad account's currency."""
    a = sim.ads
    day = sim.calendar.start_ts + a["day"] * DAY
    frame = pd.DataFrame(
        {
            "month": _month_index(day),
            "channel": sim.campaigns.channel[a["campaign"]],
            "spend": a["spend"] / 100,
        }
    )
    return frame.groupby(["month", "channel"])["spend"].sum()


def revision_dates(start: date, until: date) -> list[date]:
    """Mid-quarter revisions (15 Feb, May, Aug, Nov) after the start, up to ``until``."""
    out = []
    for year in range(start.year, until.year + 1):
        for month in REVISION_MONTHS:
            day = date(year, month, REVISION_DAY)
            if start < day <= until:
                out.append(day)
    return out


def _factor(seed: int, stream: Stream, keys: tuple[int, ...], low: float, high: float) -> float:
    return float(rng(seed, stream, *keys).uniform(low, high))


def _budget_rows(
    seed: int, month: date, spend: pd.Series, revision: date | None
) -> list[tuple[str, ...]]:
    period, rows = pd.Period(month, "M"), []
    for ci, channel in enumerate(CHANNELS):
        base = float(spend.get((period, ci), 0.0))
        planned = _nice(
            base * _factor(seed, Stream.SHEETS, (month.year, month.month, ci), 0.88, 1.15)
        )
        if revision is not None:
            keys = (revision.year, revision.month, month.year, month.month, ci)
            planned = _nice(planned * _factor(seed, Stream.SHEET_REVISION, keys, 0.85, 1.2))
        rows.append((f"{month:%Y-%m}", channel.name, f"{planned:.2f}", channel.currency))
    return rows


def _target_rows(
    seed: int, month: date, actual: pd.DataFrame, revision: date | None
) -> list[tuple[str, ...]]:
    period, rows = pd.Period(month, "M"), []
    for ki, (kpi, (higher, decimals)) in enumerate(KPIS.items()):
        value = actual[kpi].get(period, np.nan)
        if not np.isfinite(value) or value <= 0:
            continue  # nothing sensible to aim at (e.g. no customers that month)
        low, high = (0.9, 1.1) if higher is None else (0.93, 1.1) if higher else (0.9, 1.07)
        target = value * _factor(
            seed, Stream.SHEETS, (month.year, month.month, 100 + ki), low, high
        )
        if revision is not None:
            keys = (revision.year, revision.month, month.year, month.month, 100 + ki)
            target *= _factor(seed, Stream.SHEET_REVISION, keys, 0.94, 1.06)
        if kpi in ("sla_attainment", "csat", "gross_margin_pct"):
            target = min(target, 0.99)
        rows.append((f"{month:%Y-%m}", kpi, _format(target, decimals)))
    return rows


def build_sheets(sim: Simulation, start: date, until: date) -> list[Sheet]:
    """The original plan (dated ``start``) and every revision up to ``until``."""
    spend = monthly_spend_by_account(sim)
    actual = monthly_actuals(sim)
    plans: list[tuple[date, list[date], date | None]] = [
        (start, _months(start, last_planned_day(until)), None)
    ]
    for revision in revision_dates(start, until):
        first = revision.replace(day=1)
        plans.append((revision, _months(first, _add_months(first, REVISED_MONTHS - 1)), revision))
    out = []
    for dated, months, revision in plans:
        budget = [row for m in months for row in _budget_rows(sim.seed, m, spend, revision)]
        targets = [row for m in months for row in _target_rows(sim.seed, m, actual, revision)]
        out.append(
            Sheet(
                f"budget_{dated.isoformat()}.csv",
                ("month", "channel", "planned_spend", "currency"),
                budget,
            )
        )
        out.append(
            Sheet(f"kpi_targets_{dated.isoformat()}.csv", ("month", "kpi", "target"), targets)
        )
    return out


def _format(value: float, decimals: int) -> str:
    if decimals == 0:
        return str(round(value))
    return f"{value:.{decimals}f}"
