"""Mart metrics recomputed independently, in pandas, straight from the raw tables.

Every check reads only raw_* tables (the loaded demo world of the `duckdb_marts` fixture) and the
dbt project's seed CSV files for its computation, follows docs/marts.md literally and
compares the result with the published mart, which is read for the comparison only. Staging and
intermediate models are never read. Money must agree to the cent, ratios within 1e-9.

The contract's conventions (docs/marts.md), as applied here:
- raw rows are deduplicated by the contract's primary key, keeping the newest updated_at, then
  the latest _loaded_at;
- an amount is converted at the fx rate of its own date, or the most recent earlier one
  (pandas merge_asof per currency); an amount with no such rate is left out (quarantined);
  money columns are rounded to the cent per row (per order, per ad day), then summed;
- timestamps become dates, weeks and months in the business time zone; nothing after the as-of
  date counts;
- recognized orders: paid, shipped, completed, refunded;
- a customer is active on a day when they have a recognized order in the 90 days ending that day.

A mart (or a column) that is not built yet skips its check with the reason.
"""

from __future__ import annotations

import csv
import math
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pandas as pd
import pytest

from ops_warehouse.pipeline.contracts import entity
from ops_warehouse.settings import PROJECT_ROOT
from tests.dbt.conftest import MARTS_UNTIL

AS_OF = MARTS_UNTIL
BUSINESS_TZ = "UTC"
REPORTING_CURRENCY = "USD"
RECOGNIZED_STATUSES = {"paid", "shipped", "completed", "refunded"}
OPEN_TICKET_STATUSES = {"new", "open", "pending"}
SLA_TARGET_MINUTES = {"urgent": 60, "high": 240, "normal": 480, "low": 1440}
ACTIVE_WINDOW_DAYS = 90
CENT = Decimal("0.01")
RATIO_TOLERANCE = 1e-9

# Days and periods picked for the point-in-time checks (all inside the demo world's history).
# On these days a 89- or 91-day window would give another count than the 90-day one.
ACTIVE_CUSTOMER_DAYS = (date(2026, 3, 15), date(2026, 5, 14), AS_OF)
CTR_WEEK_START = date(2026, 11, 9)  # a Monday: the ISO week 2026-11-09 .. 2026-11-15
CHURN_MONTHS = (date(2026, 9, 1), date(2026, 10, 1), date(2026, 11, 1))


# --- reading -------------------------------------------------------------------------------------


def read_raw(con: duckdb.DuckDBPyConnection, name: str) -> pd.DataFrame:
    """A raw table, one row per primary key (newest updated_at, then latest _loaded_at), its
    contract fields typed: money as Decimal, timestamps as UTC datetimes, dates as datetimes."""
    ent = entity(name)
    cursor = con.execute(f"select * from {ent.raw_schema}.{ent.name}")
    frame = pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])
    for field in ent.fields:
        column = frame[field.name]
        if field.type == "decimal":
            frame[field.name] = column.map(lambda v: None if pd.isna(v) else Decimal(str(v)))
        elif field.type == "timestamp":
            frame[field.name] = pd.to_datetime(column, utc=True).dt.as_unit("ns")
        elif field.type == "date":
            frame[field.name] = pd.to_datetime(column).dt.as_unit("ns")
        elif field.type == "float":
            frame[field.name] = column.astype(float)
        elif field.type == "int":
            frame[field.name] = column.astype("Int64")
        elif field.type == "bool":
            frame[field.name] = column.map(
                lambda v: None if pd.isna(v) else str(v).lower() in ("true", "1", "t")
            )
    recency = [c for c in ("updated_at", "_loaded_at") if c in frame.columns]
    frame = frame.sort_values(recency, na_position="first", kind="stable")
    return frame.drop_duplicates(list(ent.primary_key), keep="last").reset_index(drop=True)


def read_seed(name: str) -> list[dict[str, str]]:
    with (PROJECT_ROOT / "dbt_project" / "seeds" / f"{name}.csv").open() as fh:
        return list(csv.DictReader(fh))


def read_mart(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], sql: str):
    """The result of `sql` over marts.<table> (decimals kept as Decimal); skips the check when
    the mart or one of `columns` is not built yet."""
    present = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'marts' and table_name = ?",
            [table],
        ).fetchall()
    }
    if not present:
        pytest.skip(f"marts.{table} is not built yet")
    missing = [c for c in columns if c not in present]
    if missing:
        pytest.skip(f"marts.{table} lacks column(s) {', '.join(missing)}")
    cursor = con.execute(sql)
    return pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])


# --- calendar and currency -----------------------------------------------------------------------


def business_date(timestamps: pd.Series) -> pd.Series:
    """The calendar date (as a midnight datetime) of UTC timestamps in the business time zone."""
    return (
        timestamps.dt.tz_convert(BUSINESS_TZ).dt.tz_localize(None).dt.normalize().dt.as_unit("ns")
    )


def month_start(dates: pd.Series) -> pd.Series:
    return dates.dt.to_period("M").dt.to_timestamp()


def rates_as_of(frame: pd.DataFrame, date_col: str, currency_col: str, fx: pd.DataFrame):
    """The fx rate to the reporting currency (USD) in force on each row's date: the rate of the
    date or the most recent earlier one, per currency (merge_asof backward). USD is the sheet's
    base (rate 1). NaN where the currency has no rate at or before the date."""
    rates = pd.Series(float("nan"), index=frame.index)
    rates[frame[currency_col] == REPORTING_CURRENCY] = 1.0
    for currency, rows in frame.groupby(currency_col):
        if currency == REPORTING_CURRENCY:
            continue
        sheet = fx.loc[fx["currency"] == currency, ["rate_date", "rate_to_usd"]]
        left = rows[[date_col]].reset_index().sort_values(date_col)
        matched = pd.merge_asof(
            left,
            sheet.sort_values("rate_date"),
            left_on=date_col,
            right_on="rate_date",
            direction="backward",
        )
        rates[matched["index"].to_numpy()] = matched["rate_to_usd"].to_numpy()
    return rates


def convert(amount: Decimal, rate: float) -> Decimal:
    """An amount times its fx rate, rounded to the cent (half away from zero)."""
    return (amount * Decimal(repr(rate))).quantize(CENT, rounding=ROUND_HALF_UP)


# --- recomputed facts ----------------------------------------------------------------------------


def recompute_orders(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """fct_orders: one row per order placed up to the as-of date whose currency has a rate."""
    orders = raw["orders"].copy()
    orders["order_date"] = business_date(orders["ordered_at"])
    orders = orders[orders["order_date"] <= pd.Timestamp(AS_OF)]
    orders["rate"] = rates_as_of(orders, "order_date", "currency", raw["fx_rates"])
    orders = orders[orders["rate"].notna()].copy()  # quarantined: no rate at or before the date
    orders["is_recognized"] = orders["order_status"].isin(RECOGNIZED_STATUSES)

    refunds = raw["refunds"]
    refunds = refunds[business_date(refunds["refunded_at"]) <= pd.Timestamp(AS_OF)]
    refund_totals = refunds.groupby("order_id")["amount"].agg(lambda a: sum(a, Decimal(0)))

    items = raw["order_items"].merge(
        raw["products"][["product_id", "unit_cost"]], on="product_id", how="left"
    )
    items["cost"] = [
        Decimal(int(q)) * (c if isinstance(c, Decimal) else Decimal(0))
        for q, c in zip(items["quantity"], items["unit_cost"], strict=True)
    ]
    cost_totals = items.groupby("order_id")["cost"].agg(lambda a: sum(a, Decimal(0)))

    rows = []
    for order in orders.itertuples():
        gross = refund = cogs = Decimal(0)
        if order.is_recognized:
            gross = convert(order.subtotal - order.discount, order.rate)
            refund = min(convert(refund_totals.get(order.order_id, Decimal(0)), order.rate), gross)
            if order.order_status != "refunded":
                cogs = convert(cost_totals.get(order.order_id, Decimal(0)), 1.0)  # USD costs
        rows.append((gross, refund, gross - refund, cogs, gross - refund - cogs))
    money = pd.DataFrame(
        rows,
        index=orders.index,
        columns=["gross_revenue", "refund_amount", "net_revenue", "cogs", "gross_margin"],
    )
    orders = orders.join(money)

    recognized = orders[orders["is_recognized"]].sort_values(["ordered_at", "order_id"])
    first_ids = set(recognized.drop_duplicates("customer_id")["order_id"])
    orders["is_first_order"] = orders["order_id"].isin(first_ids)
    orders["order_month"] = month_start(orders["order_date"])
    return orders.reset_index(drop=True)


def recompute_first_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """Per customer with a recognized order: first order date and cohort month."""
    first = orders.loc[orders["is_first_order"], ["customer_id", "order_date", "order_month"]]
    return first.rename(columns={"order_date": "first_order_date", "order_month": "cohort_month"})


def recompute_ad_spend(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """fct_ad_performance_daily: per date x campaign, spend converted at the ad date's rate."""
    ads = raw["ad_performance"].copy()
    ads = ads[ads["date"] <= pd.Timestamp(AS_OF)]
    ads["rate"] = rates_as_of(ads, "date", "currency", raw["fx_rates"])
    ads = ads[ads["rate"].notna()].copy()
    ads["spend_converted"] = [convert(s, r) for s, r in zip(ads["spend"], ads["rate"], strict=True)]
    ads["month"] = month_start(ads["date"])
    return ads.reset_index(drop=True)


def acquisition_channel(signup, campaign_channels: dict[str, str], source_channels: dict) -> str:
    """docs/marts.md dim_customers.acquisition_channel for one signup (None: no signup)."""
    if signup is None:
        return "unattributed"
    utm = {k: signup[k] for k in ("utm_source", "utm_medium", "utm_campaign")}
    utm = {k: (v.strip() if isinstance(v, str) and v.strip() else None) for k, v in utm.items()}
    if utm["utm_campaign"] in campaign_channels:
        return campaign_channels[utm["utm_campaign"]]
    if utm["utm_source"] and utm["utm_source"].lower() in source_channels:
        return source_channels[utm["utm_source"].lower()]
    if not any(utm.values()):
        return "organic"
    return "unattributed"  # utm present but unmappable: decided in docs/decisions.md


def active_customer_ids(orders: pd.DataFrame, day: date) -> set[str]:
    """Customers with a recognized order in the 90 days ending on `day`."""
    end = pd.Timestamp(day)
    window = orders[
        orders["is_recognized"]
        & (orders["order_date"] <= end)
        & (orders["order_date"] > end - pd.Timedelta(days=ACTIVE_WINDOW_DAYS))
    ]
    return set(window["customer_id"])


def recompute_customers(raw: dict[str, pd.DataFrame], orders: pd.DataFrame) -> pd.DataFrame:
    """dim_customers: acquisition_channel, is_active and is_churned per customer created up to
    the as-of date (a customer's signup: their earliest one up to the as-of date)."""
    customers = raw["customers"]
    customers = customers[business_date(customers["created_at"]) <= pd.Timestamp(AS_OF)].copy()
    signups = raw["signups"]
    signups = signups[business_date(signups["signed_up_at"]) <= pd.Timestamp(AS_OF)]
    first_signup = signups.sort_values(["signed_up_at", "signup_id"]).drop_duplicates("customer_id")
    signup_of = {s["customer_id"]: s for s in first_signup.to_dict("records")}
    campaigns = raw["campaigns"]  # a known campaign: one the campaigns source lists
    campaign_channels = dict(zip(campaigns["campaign_id"], campaigns["channel"], strict=True))
    source_channels = {
        r["utm_source"].strip().lower(): r["channel"] for r in read_seed("utm_source_channels")
    }

    customers["acquisition_channel"] = [
        acquisition_channel(signup_of.get(c), campaign_channels, source_channels)
        for c in customers["customer_id"]
    ]
    ordered = set(orders.loc[orders["is_recognized"], "customer_id"])
    active = active_customer_ids(orders, AS_OF)
    customers["is_active"] = customers["customer_id"].isin(active)
    customers["is_churned"] = customers["customer_id"].isin(ordered) & ~customers["is_active"]
    return customers.reset_index(drop=True)


def recompute_tickets(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """fct_tickets: first reply, solved_at, reopen_count and SLA breach per ticket created up to
    the as-of date, from the ticket events up to the end of the as-of date. The current status
    is the ticket's own `status`; events are ordered by created_at, then event_id."""
    end_of_as_of = pd.Timestamp(AS_OF + timedelta(days=1), tz=BUSINESS_TZ)
    tickets = raw["tickets"]
    tickets = tickets[tickets["created_at"] < end_of_as_of].copy().set_index("ticket_id")
    events = raw["ticket_events"]
    events = events[events["created_at"] < end_of_as_of].sort_values(["created_at", "event_id"])

    replies = events[
        (events["event_type"] == "comment")
        & (events["is_public"] == True)  # noqa: E712 (nullable booleans)
        & (events["author_role"] == "agent")
    ]
    tickets["first_reply_at"] = replies.groupby("ticket_id")["created_at"].min()
    tickets["first_reply_minutes"] = (
        tickets["first_reply_at"] - tickets["created_at"]
    ).dt.total_seconds() / 60

    changes = events[events["event_type"] == "status_change"].copy()
    changes["previous_status"] = changes.groupby("ticket_id")["new_status"].shift()
    changes["is_reopen"] = (changes["previous_status"] == "solved") & changes["new_status"].isin(
        OPEN_TICKET_STATUSES
    )
    tickets["reopen_count"] = changes.groupby("ticket_id")["is_reopen"].sum()
    tickets["reopen_count"] = tickets["reopen_count"].fillna(0).astype(int)
    last_solved = (
        changes[changes["new_status"] == "solved"].groupby("ticket_id")["created_at"].max()
    )
    is_done = tickets["status"].isin({"solved", "closed"})
    tickets["solved_at"] = last_solved.reindex(tickets.index).where(is_done)

    tickets["sla_target_minutes"] = tickets["priority"].map(SLA_TARGET_MINUTES)
    due_at = tickets["created_at"] + pd.to_timedelta(tickets["sla_target_minutes"], unit="min")
    replied = tickets["first_reply_at"].notna()
    breached = pd.Series(None, index=tickets.index, dtype=object)
    breached[replied] = (
        tickets.loc[replied, "first_reply_minutes"] > tickets.loc[replied, "sla_target_minutes"]
    )
    breached[~replied & (due_at < end_of_as_of)] = True
    tickets["is_sla_breached"] = breached
    tickets["created_date"] = business_date(tickets["created_at"])
    return tickets.reset_index()


# --- comparison ----------------------------------------------------------------------------------


def _same(expected, actual, tolerance: float | None) -> bool:
    e_null = expected is None or (isinstance(expected, float) and math.isnan(expected))
    a_null = actual is None or (isinstance(actual, float) and math.isnan(actual))
    if e_null or a_null:
        return e_null and a_null
    if isinstance(expected, Decimal) or isinstance(actual, Decimal):  # money: to the cent
        return abs(Decimal(str(expected)) - Decimal(str(actual))) < CENT / 2
    if tolerance is not None:
        return abs(float(expected) - float(actual)) <= tolerance
    return expected == actual


def assert_matches(
    expected: pd.Series, actual: pd.Series, what: str, tolerance=None, absent=0
) -> None:
    """`expected` (recomputed) equals `actual` (the mart) key by key; a key the recomputation
    lacks counts as `absent` (0: no activity), a key the mart lacks as missing."""
    keys = expected.index.union(actual.index)
    e = expected.astype(object).reindex(keys, fill_value=absent)
    a = actual.astype(object).reindex(keys, fill_value=None)
    bad = [k for k in keys if not _same(e[k], a[k], tolerance)]
    detail = "; ".join(f"{k}: recomputed {e[k]!r}, mart {a[k]!r}" for k in bad[:8])
    assert not bad, f"{what}: {len(bad)} of {len(keys)} differ, e.g. {detail}"


def iso(day) -> str:
    return pd.Timestamp(day).date().isoformat()


def _render(value):
    return iso(value) if isinstance(value, date | pd.Timestamp) else value


def by_key(frame: pd.DataFrame, keys: list[str], value: str) -> pd.Series:
    """frame[value] indexed by `keys` (dates rendered as ISO text, so marts and pandas agree)."""
    arrays = [frame[k].map(_render) for k in keys]
    index = pd.MultiIndex.from_arrays(arrays) if len(keys) > 1 else pd.Index(arrays[0])
    return pd.Series(frame[value].to_list(), index=index)


def decimal_sum(values) -> Decimal:
    return sum(values, Decimal(0))


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(duckdb_marts):
    assert duckdb_marts.reporting_currency == REPORTING_CURRENCY
    assert duckdb_marts.business_tz == BUSINESS_TZ
    path = str(duckdb_marts.warehouse_path)
    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.ConnectionException:
        # dbt ran in this process and its adapter still holds the file open read-write: a second
        # connection must share that configuration. Only reads follow.
        con = duckdb.connect(path)
    con.execute("set session TimeZone = 'UTC'")
    yield con
    con.close()


@pytest.fixture(scope="module")
def raw(warehouse) -> dict[str, pd.DataFrame]:
    names = (
        "orders",
        "order_items",
        "products",
        "refunds",
        "fx_rates",
        "customers",
        "signups",
        "campaigns",
        "ad_performance",
        "tickets",
        "ticket_events",
    )
    return {name: read_raw(warehouse, name) for name in names}


@pytest.fixture(scope="module")
def orders(raw):
    return recompute_orders(raw)


@pytest.fixture(scope="module")
def ads(raw):
    return recompute_ad_spend(raw)


@pytest.fixture(scope="module")
def customers(raw, orders):
    return recompute_customers(raw, orders)


@pytest.fixture(scope="module")
def tickets(raw):
    return recompute_tickets(raw)


# --- 1. fct_orders -------------------------------------------------------------------------------


def test_fct_orders_net_revenue_and_gross_margin_by_month(warehouse, orders):
    """docs/marts.md fct_orders: net_revenue = gross_revenue (subtotal − discount, at the order
    date's rate) − refund_amount (Σ refunds at the order date's rate, capped at gross_revenue);
    gross_margin = net_revenue − cogs (0 for `refunded`). Σ over recognized orders, per month of
    order_date and overall."""
    mart = read_mart(
        warehouse,
        "fct_orders",
        ["order_date", "is_recognized", "net_revenue", "gross_margin"],
        "select date_trunc('month', order_date) as month, sum(net_revenue) as net_revenue, "
        "sum(gross_margin) as gross_margin from marts.fct_orders where is_recognized group by 1",
    )
    mine = orders[orders["is_recognized"]].groupby("order_month")[["net_revenue", "gross_margin"]]
    mine = mine.agg(decimal_sum).reset_index()
    for column in ("net_revenue", "gross_margin"):
        assert_matches(
            by_key(mine, ["order_month"], column),
            by_key(mart, ["month"], column),
            f"fct_orders Σ{column} per month",
        )
        assert_matches(
            pd.Series([decimal_sum(mine[column])], index=["all"]),
            pd.Series([decimal_sum(mart[column])], index=["all"]),
            f"fct_orders Σ{column} overall",
        )


def test_fct_orders_first_orders(warehouse, orders):
    """docs/marts.md fct_orders.is_first_order: the customer's earliest recognized order (ties:
    lowest order_id) — one per customer with a recognized order."""
    mart = read_mart(
        warehouse,
        "fct_orders",
        ["is_first_order"],
        "select count(*) as n from marts.fct_orders where is_first_order",
    )
    assert_matches(
        pd.Series({"first orders": int(orders["is_first_order"].sum())}),
        pd.Series({"first orders": int(mart["n"][0])}),
        "fct_orders.is_first_order",
    )


# --- 2. kpi_daily / kpi_scorecard ----------------------------------------------------------------


def test_kpi_daily_orders_revenue_new_customers(warehouse, orders):
    """docs/marts.md kpi_daily: orders = recognized orders of the day; net_revenue = Σ over them;
    new_customers = customers whose first recognized order is on the day. Every day."""
    mart = read_mart(
        warehouse,
        "kpi_daily",
        ["date_day", "orders", "net_revenue", "new_customers"],
        "select date_day, orders, net_revenue, new_customers from marts.kpi_daily",
    )
    recognized = orders[orders["is_recognized"]]
    daily = (
        recognized.groupby("order_date")
        .agg(
            orders=("order_id", "count"),
            net_revenue=("net_revenue", decimal_sum),
            new_customers=("is_first_order", "sum"),
        )
        .reset_index()
    )
    for column in ("orders", "net_revenue", "new_customers"):
        expected = by_key(daily, ["order_date"], column)
        if column != "net_revenue":
            expected = expected.astype(int)
        assert_matches(expected, by_key(mart, ["date_day"], column), f"kpi_daily.{column}")


def test_kpi_daily_spend(warehouse, ads):
    """docs/marts.md kpi_daily.spend: Σ ad spend of the day, each ad row converted at the as-of fx
    rate of its ad date."""
    mart = read_mart(
        warehouse, "kpi_daily", ["date_day", "spend"], "select date_day, spend from marts.kpi_daily"
    )
    daily = ads.groupby("date")["spend_converted"].agg(decimal_sum).reset_index()
    assert_matches(
        by_key(daily, ["date"], "spend_converted"),
        by_key(mart, ["date_day"], "spend"),
        "kpi_daily.spend",
    )


def test_kpi_daily_tickets_created(warehouse, tickets):
    """docs/marts.md kpi_daily.tickets_created: tickets created (business date) on the day."""
    mart = read_mart(
        warehouse,
        "kpi_daily",
        ["date_day", "tickets_created"],
        "select date_day, tickets_created from marts.kpi_daily",
    )
    daily = tickets.groupby("created_date").size().rename("n").reset_index()
    assert_matches(
        by_key(daily, ["created_date"], "n"),
        by_key(mart, ["date_day"], "tickets_created"),
        "kpi_daily.tickets_created",
    )


def test_kpi_daily_covers_every_day_to_as_of(warehouse, orders, ads, tickets):
    """docs/marts.md kpi_daily: one row per day from the earliest date found in any source to the
    as-of date, days without activity included."""
    mart = read_mart(
        warehouse, "kpi_daily", ["date_day"], "select date_day from marts.kpi_daily order by 1"
    )
    days = pd.to_datetime(mart["date_day"])
    earliest = min(orders["order_date"].min(), ads["date"].min(), tickets["created_date"].min())
    assert days.iloc[-1] == pd.Timestamp(AS_OF), f"kpi_daily ends on {days.iloc[-1]}, not {AS_OF}"
    assert days.iloc[0] <= earliest, f"kpi_daily starts on {days.iloc[0]}, after {earliest}"
    gaps = days.diff().dropna() != pd.Timedelta(days=1)
    assert not gaps.any(), (
        f"kpi_daily skips or repeats days: {days[1:][gaps.to_numpy()].head().to_list()}"
    )


@pytest.mark.parametrize("day", ACTIVE_CUSTOMER_DAYS, ids=iso)
def test_kpi_daily_active_customers(warehouse, orders, day):
    """docs/marts.md kpi_daily.active_customers: customers with a recognized order in the 90 days
    ending on the day."""
    mart = read_mart(
        warehouse,
        "kpi_daily",
        ["date_day", "active_customers"],
        f"select active_customers from marts.kpi_daily where date_day = DATE '{day}'",
    )
    assert len(mart) == 1, f"kpi_daily has {len(mart)} rows for {day}"
    assert_matches(
        pd.Series({iso(day): len(active_customer_ids(orders, day))}),
        pd.Series({iso(day): int(mart["active_customers"][0])}),
        "kpi_daily.active_customers",
    )


def test_kpi_scorecard_weekly_ctr(warehouse, ads):
    """docs/marts.md kpi_scorecard: a week's ctr is Σclicks / Σimpressions over the whole ISO week
    (Monday to Sunday), never an average of daily ctrs."""
    assert CTR_WEEK_START.weekday() == 0
    mart = read_mart(
        warehouse,
        "kpi_scorecard",
        ["period_grain", "period_start", "kpi", "value"],
        "select value from marts.kpi_scorecard where period_grain = 'week' and kpi = 'ctr' "
        f"and cast(period_start as date) = DATE '{CTR_WEEK_START}'",
    )
    assert len(mart) == 1, f"kpi_scorecard has {len(mart)} weekly ctr rows for {CTR_WEEK_START}"
    start = pd.Timestamp(CTR_WEEK_START)
    week = ads[(ads["date"] >= start) & (ads["date"] < start + pd.Timedelta(days=7))]
    assert week["date"].nunique() == 7
    expected = int(week["clicks"].sum()) / int(week["impressions"].sum())
    assert_matches(
        pd.Series({iso(CTR_WEEK_START): expected}),
        pd.Series({iso(CTR_WEEK_START): float(mart["value"][0])}),
        "kpi_scorecard weekly ctr",
        tolerance=RATIO_TOLERANCE,
    )


@pytest.mark.parametrize("grain", ["day", "week", "month"])
def test_kpi_scorecard_returning_customer_rate(warehouse, orders, grain):
    """docs/marts.md kpi_daily / kpi_scorecard returning_customer_rate: of the distinct customers
    with a recognized order in the period, the share whose first recognized order was before the
    period starts (for a day: on an earlier day); NULL for a period without one. Every period of
    the grain, weeks from Monday, months from the 1st."""
    mart = read_mart(
        warehouse,
        "kpi_scorecard",
        ["period_grain", "period_start", "kpi", "value"],
        "select period_start, value from marts.kpi_scorecard "
        f"where period_grain = '{grain}' and kpi = 'returning_customer_rate'",
    )
    recognized = orders[orders["is_recognized"] & orders["customer_id"].notna()].copy()
    first = recognized.groupby("customer_id")["order_date"].min()
    day = recognized["order_date"]
    if grain == "day":
        recognized["period_start"] = day
    elif grain == "week":
        recognized["period_start"] = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    else:
        recognized["period_start"] = day.dt.to_period("M").dt.to_timestamp()
    pairs = recognized[["period_start", "customer_id"]].drop_duplicates()
    pairs["returning"] = pairs["customer_id"].map(first) < pairs["period_start"]
    per_period = pairs.groupby("period_start")["returning"].agg(["sum", "count"])
    expected = pd.Series(
        (per_period["sum"] / per_period["count"]).to_list(),
        index=[iso(p) for p in per_period.index],
    )
    assert expected.between(0, 1).all() and 0 < expected.mean() < 1  # both kinds occur
    actual = by_key(mart, ["period_start"], "value")
    assert_matches(
        expected,
        actual,
        f"kpi_scorecard {grain} returning_customer_rate",
        tolerance=RATIO_TOLERANCE,
        absent=None,
    )


# --- 3. dim_customers ----------------------------------------------------------------------------


def test_dim_customers_acquisition_channels(warehouse, customers):
    """docs/marts.md dim_customers.acquisition_channel: the channel of the signup's utm_campaign;
    an unknown campaign falls back to utm_source via seeds/utm_source_channels.csv; no utm →
    organic; no signup → unattributed. Customers per channel."""
    mart = read_mart(
        warehouse,
        "dim_customers",
        ["acquisition_channel"],
        "select acquisition_channel, count(*) as n from marts.dim_customers group by 1",
    )
    mine = customers.groupby("acquisition_channel").size()
    assert_matches(mine, mart.set_index("acquisition_channel")["n"], "dim_customers per channel")


def test_dim_customers_churned(warehouse, customers):
    """docs/marts.md dim_customers.is_churned: has ever (recognized-)ordered and has no recognized
    order in the 90 days ending on the as-of date."""
    mart = read_mart(
        warehouse,
        "dim_customers",
        ["is_churned", "is_active"],
        "select count(*) filter (where is_churned) as churned, "
        "count(*) filter (where is_active) as active from marts.dim_customers",
    )
    mine = {
        "churned": int(customers["is_churned"].sum()),
        "active": int(customers["is_active"].sum()),
    }
    assert_matches(
        pd.Series(mine), mart.iloc[0].astype(int), "dim_customers is_churned / is_active"
    )


# --- 4. fct_tickets ------------------------------------------------------------------------------


def test_fct_tickets_first_reply_and_reopens(warehouse, tickets):
    """docs/marts.md fct_tickets: first_reply_minutes = created_at → first public agent comment
    (median = percentile_cont(0.5) over tickets with a reply); reopen_count = status changes
    from solved to an open status (tickets with at least one)."""
    mart = read_mart(
        warehouse,
        "fct_tickets",
        ["first_reply_minutes", "reopen_count"],
        "select percentile_cont(0.5) within group (order by first_reply_minutes) as median, "
        "count(first_reply_minutes) as replied, "
        "count(*) filter (where reopen_count > 0) as reopened from marts.fct_tickets",
    )
    minutes = tickets["first_reply_minutes"].dropna()
    mine = {
        "median": float(minutes.median()),
        "replied": len(minutes),
        "reopened": int((tickets["reopen_count"] > 0).sum()),
    }
    assert_matches(
        pd.Series(mine),
        mart.iloc[0].astype(float),
        "fct_tickets first reply / reopens",
        tolerance=RATIO_TOLERANCE,
    )


def test_fct_tickets_solved_at(warehouse, tickets):
    """docs/marts.md fct_tickets.solved_at: the last status change to solved when the ticket's
    current status is solved or closed, else NULL. Per ticket."""
    mart = read_mart(
        warehouse,
        "fct_tickets",
        ["ticket_id", "solved_at"],
        "select ticket_id, solved_at from marts.fct_tickets",
    )

    def instants(values) -> pd.Series:
        return pd.to_datetime(pd.Series(list(values)), utc=True).map(
            lambda t: None if pd.isna(t) else t.isoformat()
        )

    expected = pd.Series(
        instants(tickets["solved_at"]).to_list(), index=tickets["ticket_id"].astype(int)
    )
    actual = pd.Series(instants(mart["solved_at"]).to_list(), index=mart["ticket_id"].astype(int))
    assert_matches(expected, actual, "fct_tickets.solved_at", absent="(no such ticket)")


def test_fct_tickets_sla_breaches(warehouse, tickets):
    """docs/marts.md fct_tickets.is_sla_breached, targets urgent 60 / high 240 / normal 480 / low
    1440 minutes: first reply later than the target, or no reply and the target passed before the
    end of the as-of date; NULL while undecided. Tickets per value (true / false / null)."""
    mart = read_mart(
        warehouse,
        "fct_tickets",
        ["is_sla_breached"],
        "select coalesce(cast(is_sla_breached as text), 'null') as value, count(*) as n "
        "from marts.fct_tickets group by 1",
    )
    mine = tickets["is_sla_breached"].map(lambda v: "null" if v is None else str(bool(v)).lower())
    assert_matches(mine.value_counts(), mart.set_index("value")["n"], "fct_tickets.is_sla_breached")


# --- 5. retention_cohorts / churn_monthly --------------------------------------------------------


def test_retention_cohorts_sizes_and_month_1(warehouse, orders):
    """docs/marts.md retention_cohorts: cohort_size = customers whose first recognized order is in
    cohort_month; retained_customers at month 1 = those with a recognized order in the next
    month."""
    mart = read_mart(
        warehouse,
        "retention_cohorts",
        ["cohort_month", "months_since_first_order", "cohort_size", "retained_customers"],
        "select cohort_month, months_since_first_order as m, cohort_size, retained_customers "
        "from marts.retention_cohorts where months_since_first_order in (0, 1)",
    )
    first = recompute_first_orders(orders)
    sizes = first.groupby("cohort_month").size().rename("n").reset_index()
    recognized = orders[orders["is_recognized"]][["customer_id", "order_month"]].drop_duplicates()
    cohort = recognized.merge(first, on="customer_id")
    next_month = cohort[cohort["order_month"] == cohort["cohort_month"] + pd.DateOffset(months=1)]
    retained = next_month.groupby("cohort_month").size().rename("n").reset_index()
    last_cohort_with_month_1 = (pd.Period(AS_OF, "M") - 1).to_timestamp()
    sizes_with_month_1 = sizes[sizes["cohort_month"] <= last_cohort_with_month_1]

    month_0 = mart[mart["m"] == 0]
    assert_matches(
        by_key(sizes, ["cohort_month"], "n"),
        by_key(month_0, ["cohort_month"], "cohort_size"),
        "retention_cohorts.cohort_size",
    )
    month_1 = mart[mart["m"] == 1]
    expected = by_key(retained, ["cohort_month"], "n").reindex(
        by_key(sizes_with_month_1, ["cohort_month"], "n").index, fill_value=0
    )
    assert_matches(
        expected,
        by_key(month_1, ["cohort_month"], "retained_customers"),
        "retention_cohorts.retained_customers at month 1",
    )


def test_churn_monthly_active_at_end(warehouse, orders):
    """docs/marts.md churn_monthly.active_at_end: customers active (recognized order in the 90 days
    ending that day) on the month's last day, or on the as-of date for the current month.
    The last three months."""
    mart = read_mart(
        warehouse,
        "churn_monthly",
        ["month_start", "active_at_end"],
        "select month_start, active_at_end from marts.churn_monthly",
    )
    mart = mart[pd.to_datetime(mart["month_start"]).isin([pd.Timestamp(m) for m in CHURN_MONTHS])]
    expected = {}
    for month in CHURN_MONTHS:
        month_end = (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).date()
        expected[iso(month)] = len(active_customer_ids(orders, min(month_end, AS_OF)))
    assert_matches(
        pd.Series(expected),
        by_key(mart, ["month_start"], "active_at_end"),
        "churn_monthly.active_at_end",
    )


# --- 6. channel_roi_monthly ----------------------------------------------------------------------


def test_channel_roi_monthly_spend(warehouse, ads):
    """docs/marts.md channel_roi_monthly.spend: Σ ad spend of the month and channel (the ad row's
    own channel), each ad row at its ad date's rate."""
    mart = read_mart(
        warehouse,
        "channel_roi_monthly",
        ["month_start", "channel", "spend"],
        "select month_start, channel, spend from marts.channel_roi_monthly",
    )
    mine = ads.groupby(["month", "channel"])["spend_converted"].agg(decimal_sum).reset_index()
    assert_matches(
        by_key(mine, ["month", "channel"], "spend_converted"),
        by_key(mart, ["month_start", "channel"], "spend"),
        "channel_roi_monthly.spend",
    )


def test_channel_roi_monthly_new_customers(warehouse, orders, customers):
    """docs/marts.md channel_roi_monthly.new_customers: customers whose first recognized order is in
    the month, by their acquisition_channel (paid channels, organic, unattributed)."""
    mart = read_mart(
        warehouse,
        "channel_roi_monthly",
        ["month_start", "channel", "new_customers"],
        "select month_start, channel, new_customers from marts.channel_roi_monthly",
    )
    first = recompute_first_orders(orders).merge(
        customers[["customer_id", "acquisition_channel"]], on="customer_id", how="left"
    )
    # an ordering customer missing from the customers source has no signup either
    first["acquisition_channel"] = first["acquisition_channel"].fillna("unattributed")
    mine = first.groupby(["cohort_month", "acquisition_channel"]).size().rename("n").reset_index()
    assert_matches(
        by_key(mine, ["cohort_month", "acquisition_channel"], "n"),
        by_key(mart, ["month_start", "channel"], "new_customers"),
        "channel_roi_monthly.new_customers",
    )
