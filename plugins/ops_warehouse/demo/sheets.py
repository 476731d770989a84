"""The ops team's landing sheets: monthly ad budgets and KPI targets.

Plans are made the way a team makes them: from what the business really does, give or
take. A month's plan is its simulated outcome (the simulation always runs at least to
the end of the last planned month) times a factor drawn from a stream of its own, so a
month's numbers never depend on the clock, and some months beat their plan while others
miss it.

Two files of each kind: the original plan, dated on the world's start and covering
every month up to two months after ``until``; and a revision, dated 45 days before
``until``, that changes the numbers of three months (the revision's month and the two
after it), so that "the newest file wins" has work to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from ops_warehouse.demo.genesis import BUDGET_FX, CHANNELS, DAY, Stream, rng
from ops_warehouse.demo.simulation import NEVER, Simulation

REVISION_LEAD_DAYS = 45
REVISED_MONTHS = 3
PLANNED_MONTHS_AHEAD = 2

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
    first = _month_start(until)
    for _ in range(PLANNED_MONTHS_AHEAD + 1):
        first = (first + timedelta(days=32)).replace(day=1)
    return first - timedelta(days=1)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _months(first: date, last: date) -> list[date]:
    out, m = [], _month_start(first)
    while m <= last:
        out.append(m)
        m = (m + timedelta(days=32)).replace(day=1)
    return out


def _nice(value: float) -> float:
    """Round like a person filling a sheet: three significant digits."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    step = 10.0 ** (math.floor(math.log10(value)) - 2)
    return round(round(value / step) * step, 2)


def _month_index(ts: np.ndarray) -> pd.PeriodIndex:
    return pd.to_datetime(ts, unit="s").to_period("M")


def monthly_actuals(sim: Simulation) -> pd.DataFrame:
    """What really happened each month (USD): the basis of every plan. Approximates the
    marts' definitions closely enough for targets; lifecycles are taken as final."""
    o, t = sim.orders, sim.tickets
    recognized = o["cancelled_ts"] == NEVER
    gross = (o["subtotal"] - o["discount"]) * o["rate"] / 100
    refunded = np.zeros(len(gross))
    if len(sim.refunds["order_no"]):
        np.add.at(refunded, sim.refunds["order_no"] - 1, sim.refunds["amount"] * o["rate"][sim.refunds["order_no"] - 1] / 100)
    net = gross - np.minimum(refunded, gross)
    cogs = np.where(o["refunded_ts"] < NEVER, 0, o["cogs_usd"] / 100)
    orders = pd.DataFrame({
        "month": _month_index(o["ordered_ts"]), "customer": o["customer_no"],
        "ts": o["ordered_ts"], "gross": gross, "net": net, "margin": net - cogs,
    })[recognized]
    first = orders.sort_values(["ts"]).drop_duplicates("customer")
    by_month = orders.groupby("month").agg(orders=("gross", "size"), gross=("gross", "sum"),
                                           net_revenue=("net", "sum"), margin=("margin", "sum"))
    by_month["new_customers"] = first.groupby("month").size()
    ads_day = sim.calendar.start_ts + sim.ads["day"] * DAY
    by_month["spend"] = pd.Series(sim.ads["spend_usd"], index=_month_index(ads_day)).groupby(level=0).sum()

    created = pd.DataFrame({"month": _month_index(t["created_ts"]), "breached": t["breached"],
                            "reply_min": (t["first_reply_ts"] - t["created_ts"]) / 60})
    by_month["sla_attainment"] = 1 - created.groupby("month")["breached"].mean()
    by_month["median_first_reply_minutes"] = created.groupby("month")["reply_min"].median()
    e = sim.events
    rated = e["score"] >= 0
    by_month["csat"] = pd.Series(e["score"][rated] == 0, index=_month_index(e["ts"][rated])).groupby(level=0).mean()
    solved = pd.Series(1, index=_month_index(t["solved_ts"])).groupby(level=0).sum()
    te = sim.time_entries
    fx = np.array([BUDGET_FX[c] for c in te["currency"]]) if len(te["currency"]) else np.zeros(0)
    cost = pd.Series(te["minutes"] / 60 * te["cost_cents_per_hour"] / 100 * fx,
                     index=_month_index(te["logged_ts"])).groupby(level=0).sum()
    by_month["cost_per_ticket"] = cost / solved
    by_month["blended_cac"] = by_month["spend"] / by_month["new_customers"]
    by_month["gross_margin_pct"] = by_month["margin"] / by_month["net_revenue"]
    by_month["aov"] = by_month["gross"] / by_month["orders"]
    return by_month


def monthly_spend_by_account(sim: Simulation) -> pd.DataFrame:
    """Ad spend per month and channel in the ad account's currency."""
    a = sim.ads
    day = sim.calendar.start_ts + a["day"] * DAY
    frame = pd.DataFrame({"month": _month_index(day),
                          "channel": sim.campaigns.channel[a["campaign"]],
                          "spend": a["spend"] / 100})
    return frame.groupby(["month", "channel"])["spend"].sum()


def _factor(seed: int, stream: Stream, month: date, key: int, low: float, high: float) -> float:
    return float(rng(seed, stream, month.year, month.month, key).uniform(low, high))


def build_sheets(sim: Simulation, start: date, until: date) -> list[Sheet]:
    seed = sim.seed
    months = _months(start, last_planned_day(until))
    spend = monthly_spend_by_account(sim)
    actual = monthly_actuals(sim)
    revision_day = until - timedelta(days=REVISION_LEAD_DAYS)
    revised = _months(revision_day, revision_day)
    while len(revised) < REVISED_MONTHS:
        revised.append((revised[-1] + timedelta(days=32)).replace(day=1))
    sheets_dated = [(start, months, False)]
    if start < revision_day:
        sheets_dated.append((revision_day, revised, True))

    out = []
    for dated, covered, is_revision in sheets_dated:
        budget_rows, target_rows = [], []
        for m in covered:
            period = pd.Period(m, "M")
            for ci, channel in enumerate(CHANNELS):
                base = float(spend.get((period, ci), 0.0))
                planned = _nice(base * _factor(seed, Stream.SHEETS, m, ci, 0.88, 1.15))
                if is_revision:
                    planned = _nice(planned * _factor(seed, Stream.SHEET_REVISION, m, ci, 0.85, 1.2))
                budget_rows.append((m.strftime("%Y-%m"), channel.name, f"{planned:.2f}",
                                    channel.currency))
            for ki, (kpi, (higher, decimals)) in enumerate(KPIS.items()):
                value = actual[kpi].get(period, np.nan) if kpi in actual else np.nan
                if not np.isfinite(value) or value <= 0:
                    continue  # nothing sensible to aim at (e.g. no customers that month)
                low, high = (0.9, 1.1) if higher is None else (0.93, 1.1) if higher else (0.9, 1.07)
                target = value * _factor(seed, Stream.SHEETS, m, 100 + ki, low, high)
                if is_revision:
                    target *= _factor(seed, Stream.SHEET_REVISION, m, 100 + ki, 0.94, 1.06)
                if kpi in ("sla_attainment", "csat", "gross_margin_pct"):
                    target = min(target, 0.99)
                target_rows.append((m.strftime("%Y-%m"), kpi, _format(target, decimals)))
        out.append(Sheet(f"budget_{dated.isoformat()}.csv",
                         ("month", "channel", "planned_spend", "currency"), budget_rows))
        out.append(Sheet(f"kpi_targets_{dated.isoformat()}.csv", ("month", "kpi", "target"),
                         target_rows))
    return out


def _format(value: float, decimals: int) -> str:
    if decimals == 0:
        return str(round(value))
    return f"{value:.{decimals}f}"

