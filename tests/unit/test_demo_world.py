"""The demo world generator: determinism, stable history as the clock moves, the source
contract, the invariants the pipeline relies on, and the signal the marts should find."""

from __future__ import annotations

import csv
import functools
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from ops_demo import snapshot, world
from ops_demo.genesis import CHANNELS, ORGANIC
from ops_demo.simulation import NEVER, simulate
from ops_demo.snapshot import ARROW_TYPES
from ops_warehouse.pipeline.contracts import BY_NAME, ENTITIES, entities_of
from ops_warehouse.pipeline.shop_schema import metadata

SEED = 7
SCALE = 0.03
# D + 3 falls in the next month: the two worlds simulate different horizons (sheets plan
# two months past the clock), which must not change any shared history
D = date(2026, 11, 29)
HISTORY = 120
START = D - timedelta(days=HISTORY - 1)
API = (
    "ad_performance",
    "campaigns",
    "signups",
    "tickets",
    "ticket_events",
    "agents",
    "time_entries",
)
SHOP = tuple(e.name for e in entities_of("sales"))
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _gen(path: Path, until: date = D, **kw) -> Path:
    world.generate(
        path, seed=SEED, scale=SCALE, until=until, history_days=(until - START).days + 1, **kw
    )
    return path


@pytest.fixture(scope="module")
def big_sim():
    """Two years at a tenth of full scale: enough customers for rates to mean something."""
    return simulate(SEED, 0.1, date(2024, 1, 1), 730)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, Path]:
    """The world at D, at D + 1, at D + 3, and the world at D advanced by 3 days."""
    root = tmp_path_factory.mktemp("worlds")
    out = {
        "d": _gen(root / "d"),
        "d1": _gen(root / "d1", D + timedelta(days=1)),
        "d3": _gen(root / "d3", D + timedelta(days=3)),
    }
    shutil.copytree(out["d"], root / "advanced")
    world.advance(root / "advanced", days=3)
    out["advanced"] = root / "advanced"
    return out


# --- reading a world back ----------------------------------------------------------------


def _norm(value):
    """Python values as both databases and parquet hand them back, made comparable."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, Decimal):
        return float(value)
    return value


def shop_rows(url: str) -> dict[str, list[dict]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for name in SHOP:
                t = metadata.tables[name]
                pk = [t.c[k] for k in BY_NAME[name].primary_key]
                rows = conn.execute(sa.select(t).order_by(*pk)).mappings().all()
                out[name] = [{k: _norm(v) for k, v in r.items()} for r in rows]
            return out
    finally:
        engine.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path / 'shop.sqlite'}"


@functools.cache
def load(path: Path) -> dict[str, list[dict]]:
    """Every entity of a world as a list of row dicts (sheets: rows of all files).
    Cached: worlds of the module fixture do not change; do not modify the rows."""
    out = {name: pq.read_table(path / "api" / f"{name}.parquet").to_pylist() for name in API}
    out.update(shop_rows(sqlite_url(path)))
    for kind in ("budget", "kpi_targets"):
        out[kind] = [
            row
            for f in sorted((path / "landing").glob(f"{kind}_*.csv"))
            for row in csv.DictReader(f.open())
        ]
    return out


def frame(path: Path, name: str) -> pd.DataFrame:
    if name in API:
        return pq.read_table(path / "api" / f"{name}.parquet").to_pandas()
    return pd.DataFrame(shop_rows(sqlite_url(path))[name])


def files(path: Path) -> dict[str, bytes]:
    """The world's files by relative path (the shop database is compared by rows)."""
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.suffix in (".parquet", ".csv", ".json")
    }


def clock_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


# --- determinism ---------------------------------------------------------------------------


def test_same_inputs_give_identical_files_and_rows(worlds, tmp_path):
    again = _gen(tmp_path / "again")
    assert files(again) == files(worlds["d"])
    assert shop_rows(sqlite_url(again)) == shop_rows(sqlite_url(worlds["d"]))


def test_another_seed_gives_another_world(worlds, tmp_path):
    other = tmp_path / "other"
    world.generate(other, seed=SEED + 1, scale=SCALE, until=D, history_days=HISTORY)
    assert files(other)["api/tickets.parquet"] != files(worlds["d"])["api/tickets.parquet"]


def test_advance_equals_regenerating_at_the_later_clock(worlds):
    assert files(worlds["advanced"]) == files(worlds["d3"])
    assert shop_rows(sqlite_url(worlds["advanced"])) == shop_rows(sqlite_url(worlds["d3"]))
    info = world.read_info(worlds["advanced"])
    assert (info.start, info.until) == (START, D + timedelta(days=3))
    assert info.clock == clock_of(D + timedelta(days=3))


def test_world_json_counts_every_entity(worlds):
    info = world.read_info(worlds["d"])
    assert (info.seed, info.scale, info.start, info.until) == (SEED, SCALE, START, D)
    assert info.clock == datetime(2026, 11, 30, tzinfo=UTC)
    data = load(worlds["d"])
    assert info.row_counts == {e.name: len(data[e.name]) for e in ENTITIES}
    assert all(n > 0 for n in info.row_counts.values()), info.row_counts


def test_advance_needs_a_world_and_moves_forward_only(tmp_path, worlds):
    with pytest.raises(world.WorldError, match="no demo world"):
        world.advance(tmp_path / "nothing", days=1)
    with pytest.raises(world.WorldError, match="forward"):
        world.advance(worlds["d"], days=0)


# --- history is stable as the clock moves ----------------------------------------------------

# entity -> the column an incremental load reads by (rows are immutable when it is the
# creation time); full-mode and window-mode entities are tested separately
CURSORS = {
    "campaigns": "updated_at",
    "signups": "updated_at",
    "customers": "updated_at",
    "products": "updated_at",
    "orders": "updated_at",
    "order_items": "updated_at",
    "refunds": "updated_at",
    "fx_rates": "rate_date",
    "tickets": "updated_at",
    "ticket_events": "created_at",
    "time_entries": "logged_at",
}


@pytest.mark.parametrize("name", sorted(CURSORS))
def test_history_is_stable_when_the_clock_moves(worlds, name):
    """World(D+3) holds every row of world(D) under the same key; a row that differs
    has a cursor at or after clock(D); every row of world(D+3) with an earlier cursor is
    in world(D) unchanged. So loading by cursor catches every change."""
    pk, cursor = BY_NAME[name].primary_key, CURSORS[name]
    old = {tuple(r[k] for k in pk): r for r in load(worlds["d"])[name]}
    new = {tuple(r[k] for k in pk): r for r in load(worlds["d3"])[name]}
    clock = clock_of(D)
    if cursor == "rate_date":
        clock = D + timedelta(days=1)
    assert old, "nothing to compare"
    assert all(r[cursor] < clock for r in old.values()), f"{name}: world(D) holds its future"
    assert old.keys() <= new.keys(), f"{name}: rows vanished"
    changed = [k for k in old if old[k] != new[k]]
    assert all(new[k][cursor] >= clock for k in changed), f"{name}: a change kept its cursor"
    for k, row in new.items():
        if row[cursor] < clock:
            assert old.get(k) == row, f"{name}: {k} appeared or changed behind the cursor"
    if name not in ("campaigns", "products"):  # these two are (nearly) fixed lists
        assert len(new) > len(old), f"{name}: three more days added nothing"


def test_some_rows_change_after_they_were_first_seen(worlds):
    """Statuses move on: the stability test above has changed rows to check."""
    old, new = load(worlds["d"]), load(worlds["d3"])
    for name in ("orders", "tickets"):
        before = {r[BY_NAME[name].primary_key[0]]: r for r in old[name]}
        moved = [
            r
            for r in new[name]
            if r[BY_NAME[name].primary_key[0]] in before
            and r != before[r[BY_NAME[name].primary_key[0]]]
        ]
        assert moved, name


def test_agents_keep_their_ids(worlds):
    old, new = load(worlds["d"])["agents"], load(worlds["d3"])["agents"]
    assert [a["agent_id"] for a in old] == [a["agent_id"] for a in new]


def test_only_the_last_three_ad_days_are_restated(worlds):
    old = {(r["date"], r["campaign_id"]): r for r in load(worlds["d"])["ad_performance"]}
    new = {(r["date"], r["campaign_id"]): r for r in load(worlds["d1"])["ad_performance"]}
    assert old.keys() <= new.keys()
    assert max(d for d, _ in new) == D + timedelta(days=1)
    recent = {D - timedelta(days=k) for k in range(3)}
    for key, row in old.items():
        if key[0] in recent:
            continue
        assert new[key] == row, key
    restated = [k for k in old if k[0] in recent and old[k] != new[k]]
    assert len(restated) == sum(1 for k in old if k[0] in recent), "every recent row moves"
    # a day old: ~85 % of what it will finally be; numbers only grow
    for k in restated:
        assert old[k]["spend"] <= new[k]["spend"] and old[k]["impressions"] <= new[k]["impressions"]
    yesterday = [k for k in restated if k[0] == D]
    final = [new[k]["spend"] for k in yesterday]
    shown = [old[k]["spend"] for k in yesterday]
    assert 0.8 < sum(shown) / sum(final) < 0.95


def test_ids_do_not_depend_on_the_clock(worlds):
    """A customer's id in world(D) names the same person in world(D+3)."""
    old = {r["customer_id"]: r["email"] for r in load(worlds["d"])["customers"]}
    new = {r["customer_id"]: r["email"] for r in load(worlds["d3"])["customers"]}
    assert all(new[k] == v for k, v in old.items())


def test_sheet_months_keep_their_numbers(worlds):
    """The original plan of a month is the same whatever the clock."""

    def original(path):
        f = path / "landing" / f"budget_{START.isoformat()}.csv"
        return {(r["month"], r["channel"]): r for r in csv.DictReader(f.open())}

    old, new = original(worlds["d"]), original(worlds["d3"])
    assert all(new[k] == v for k, v in old.items())


# --- the contract ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", API)
def test_api_files_have_exactly_the_contract_fields_and_types(worlds, name):
    schema = pq.read_schema(worlds["d"] / "api" / f"{name}.parquet")
    e = BY_NAME[name]
    assert schema.names == e.field_names
    for f in e.fields:
        assert schema.field(f.name).type == ARROW_TYPES[f.type], f.name


def test_shop_tables_have_exactly_the_contract_columns(worlds):
    inspector = sa.inspect(sa.create_engine(sqlite_url(worlds["d"])))
    for name in SHOP:
        assert [c["name"] for c in inspector.get_columns(name)] == BY_NAME[name].field_names


def test_sheets_have_the_contract_columns(worlds):
    landing = worlds["d"] / "landing"
    names = sorted(p.name for p in landing.iterdir())
    # the original plan, and the quarterly revision of mid-August and mid-November
    assert names == [
        f"{kind}_{day}.csv"
        for kind in ("budget", "kpi_targets")
        for day in (START, "2026-08-15", "2026-11-15")
    ]
    for kind in ("budget", "kpi_targets"):
        for f in landing.glob(f"{kind}_*.csv"):
            assert next(csv.reader(f.open())) == BY_NAME[kind].field_names


def test_sheets_plan_every_month_and_revisions_change_numbers(worlds):
    landing = worlds["d"] / "landing"
    plan = {
        (r["month"], r["channel"]): float(r["planned_spend"])
        for r in csv.DictReader((landing / f"budget_{START}.csv").open())
    }
    months = sorted({m for m, _ in plan})
    assert months[0] == f"{START:%Y-%m}" and months[-1] == "2027-01"
    assert len(plan) == len(months) * len(CHANNELS)
    revised = {
        (r["month"], r["channel"]): float(r["planned_spend"])
        for r in csv.DictReader((landing / "budget_2026-11-15.csv").open())
    }
    assert sorted({m for m, _ in revised}) == ["2026-11", "2026-12", "2027-01"]
    assert sum(revised[k] != plan[k] for k in revised) >= len(revised) - 1
    targets = list(csv.DictReader((landing / f"kpi_targets_{START}.csv").open()))
    kpis = {r["kpi"] for r in targets}
    assert kpis >= {
        "spend",
        "new_customers",
        "blended_cac",
        "orders",
        "net_revenue",
        "gross_margin_pct",
        "aov",
        "sla_attainment",
        "csat",
        "median_first_reply_minutes",
        "cost_per_ticket",
    }
    assert all(
        0 < float(r["target"]) <= 1
        for r in targets
        if r["kpi"] in ("sla_attainment", "csat", "gross_margin_pct")
    )


def test_sheets_only_accumulate_as_the_clock_moves(worlds):
    """A dropped sheet is never withdrawn or rewritten; the original plan only grows."""

    def sheets(path):
        return {f.name: f.read_text() for f in (path / "landing").iterdir()}

    old, new = sheets(worlds["d"]), sheets(worlds["d3"])
    assert old.keys() <= new.keys()
    for name, text in old.items():
        assert new[name].startswith(text), name


@pytest.mark.parametrize("name", [e.name for e in ENTITIES if e.allowed])
def test_values_are_within_the_allowed_sets(worlds, name):
    rows = load(worlds["d"])[name]
    for column, allowed in BY_NAME[name].allowed.items():
        seen = {r[column] for r in rows}
        assert seen <= set(allowed), (column, seen - set(allowed))


@pytest.mark.parametrize("name", [e.name for e in ENTITIES])
def test_required_values_are_present(worlds, name):
    e = BY_NAME[name]
    for row in load(worlds["d"])[name]:
        for f in e.fields:
            if not f.nullable:
                assert row[f.name] not in (None, ""), (name, f.name, row)


# --- invariants --------------------------------------------------------------------------------


def test_nothing_happens_at_or_after_the_clock(worlds):
    data, clock = load(worlds["d"]), clock_of(D)
    for e in ENTITIES:
        for f in e.fields:
            if f.type == "timestamp":
                assert all(r[f.name] < clock for r in data[e.name] if r[f.name]), (e.name, f.name)
    assert max(r["date"] for r in data["ad_performance"]) == D
    assert min(r["date"] for r in data["ad_performance"]) == START


def test_ad_numbers_are_consistent(worlds):
    ads = frame(worlds["d"], "ad_performance")
    assert (ads["clicks"] <= ads["impressions"]).all()
    assert (ads[["impressions", "clicks", "spend", "platform_conversions"]] >= 0).all().all()
    assert (ads["spend"] > 0).all()
    currency = {c.name: c.currency for c in CHANNELS}
    assert (ads["currency"] == ads["channel"].map(currency)).all()
    assert set(ads["channel"]) == set(currency)
    campaigns = frame(worlds["d"], "campaigns")
    assert set(ads["campaign_id"]) <= set(campaigns["campaign_id"])
    assert campaigns["campaign_id"].str.fullmatch(r"(gads|meta|ttk|lnkd)-\d{4}").all()


def cents(money: pd.Series) -> pd.Series:
    return (money.astype(float) * 100).round().astype(np.int64)


def test_order_money_adds_up_to_the_cent(worlds):
    orders = frame(worlds["d"], "orders").set_index("order_id")
    items = frame(worlds["d"], "order_items")
    line = cents(items["unit_price"]) * items["quantity"]
    subtotal = line.groupby(items["order_id"]).sum()
    assert (subtotal.reindex(orders.index) == cents(orders["subtotal"])).all()
    total = (
        cents(orders["subtotal"])
        - cents(orders["discount"])
        + cents(orders["shipping"])
        + cents(orders["tax"])
    )
    assert (total == cents(orders["total"])).all()
    for col in ("subtotal", "discount", "shipping", "tax", "total"):
        assert (orders[col].astype(float) * 100 - cents(orders[col])).abs().max() < 1e-6
    assert (orders["discount"] > 0).any() and (orders["discount"] == 0).any()
    assert 2.0 < len(items) / len(orders) < 3.0
    # every order has items, every item an order
    assert set(items["order_id"]) == set(orders.index)


def test_order_currency_follows_the_country(worlds):
    orders = frame(worlds["d"], "orders")
    customers = frame(worlds["d"], "customers").set_index("customer_id")
    country = orders["customer_id"].map(customers["country"])
    expected = {
        "US": "USD",
        "CA": "USD",
        "AU": "USD",
        "JP": "USD",
        "CN": "CNY",
        "GB": "EUR",
        "DE": "EUR",
        "FR": "EUR",
        "NL": "EUR",
        "ES": "EUR",
        "IT": "EUR",
    }
    unchanged = orders["customer_id"].map(customers["created_at"] == customers["updated_at"])
    assert (orders["currency"][unchanged] == country[unchanged].map(expected)).all()


def test_refunds_and_statuses(worlds):
    orders = frame(worlds["d"], "orders").set_index("order_id")
    refunds = frame(worlds["d"], "refunds")
    assert set(refunds["order_id"]) <= set(orders.index)
    refunded = refunds.groupby("order_id")["amount"].sum()
    status = orders.loc[refunded.index, "order_status"]
    assert status.isin(["completed", "refunded"]).all()
    assert {"refunded", "cancelled"} <= set(orders["order_status"])
    # the world ends with orders still on their way
    assert (orders["order_status"] == "shipped").any() and (orders["order_status"] == "paid").any()
    assert (refunds["refunded_at"] > orders.loc[refunds["order_id"], "ordered_at"].to_numpy()).all()


def test_refunds_exceed_the_order_only_rarely(big_sim):
    """About 1 order in 2000 is refunded more than was paid: a data error to cap."""
    o, r = big_sim.orders, big_sim.refunds
    net = o["subtotal"] - o["discount"]
    refunded = np.bincount(r["order_no"] - 1, weights=r["amount"], minlength=len(net))
    over = int((refunded > net).sum())
    assert 0 < over < len(net) / 800, (over, len(net))
    assert ((refunded > 0) & (refunded <= net)).sum() > 30 * over


def test_fx_rates_skip_weekends_for_eur_and_cny(worlds):
    fx = frame(worlds["d"], "fx_rates")
    fx["weekday"] = pd.to_datetime(fx["rate_date"]).dt.day_of_week
    usd = fx[fx["currency"] == "USD"]
    assert (usd["rate_to_usd"] == 1.0).all() and len(usd) == HISTORY
    for ccy, (low, high) in {"EUR": (1.05, 1.15), "CNY": (0.135, 0.145)}.items():
        rows = fx[fx["currency"] == ccy]
        assert (rows["weekday"] < 5).all()
        assert rows["rate_to_usd"].between(low, high).all()
        assert rows["rate_to_usd"].nunique() > len(rows) / 2
        weekdays = sum(1 for k in range(HISTORY) if (START + timedelta(days=k)).weekday() < 5)
        assert len(rows) >= weekdays
        # START is a Sunday: the Friday before has a rate, so the first days' EUR and CNY
        # amounts have one "at or before" their date
        assert START.weekday() == 6 and rows["rate_date"].min() == START - timedelta(days=2)
    assert fx["rate_date"].max() == D


def test_ticket_events_fill_only_their_own_fields(worlds):
    events = load(worlds["d"])["ticket_events"]
    for e in events:
        assert (e["is_public"] is not None) == (e["event_type"] == "comment")
        assert (e["new_status"] is not None) == (e["event_type"] == "status_change")
        assert (e["score"] is not None) == (e["event_type"] == "satisfaction_rated")
    assert [e["event_id"] for e in events] == list(range(1, len(events) + 1))
    times = [e["created_at"] for e in events]
    assert times == sorted(times)
    kinds = {(e["event_type"], e["author_role"], e["is_public"]) for e in events}
    assert ("comment", "agent", False) in kinds and ("comment", "end_user", True) in kinds
    assert {e["new_status"] for e in events} >= {"open", "pending", "solved", "closed"}


def test_ticket_status_is_its_latest_event(worlds):
    tickets = load(worlds["d"])["tickets"]
    events = load(worlds["d"])["ticket_events"]
    last_status, last_time = {}, {}
    for e in sorted(events, key=lambda e: (e["created_at"], e["event_id"])):
        last_time[e["ticket_id"]] = e["created_at"]
        if e["new_status"]:
            last_status[e["ticket_id"]] = e["new_status"]
    for t in tickets:
        assert t["status"] == last_status.get(t["ticket_id"], "new")
        assert t["updated_at"] == last_time[t["ticket_id"]]
        assert (t["assignee_id"] is None) == (t["status"] == "new")
    # a backlog: the newest tickets are not solved yet
    newest = sorted(tickets, key=lambda t: t["created_at"])[-5:]
    assert any(t["status"] in ("new", "open", "pending") for t in newest)


def test_tickets_pass_through_every_status(big_sim):
    seen = set()
    for day in range(720, 731):
        statuses = snapshot.tickets(big_sim, big_sim.calendar.day_ts(day)).column("status")
        seen |= set(statuses.to_pylist())
        backlog = sum(s in ("new", "open", "pending") for s in statuses.to_pylist())
        assert 0.001 < backlog / len(statuses) < 0.05
    assert seen == {"new", "open", "pending", "solved", "closed"}


def test_some_ticket_emails_match_customers_only_loosely(worlds):
    customers = {r["email"] for r in load(worlds["d"])["customers"]}
    tickets = load(worlds["d"])["tickets"]
    exact = [t for t in tickets if t["requester_email"] in customers]
    loose = [
        t
        for t in tickets
        if t["requester_email"] not in customers
        and t["requester_email"].strip().lower() in customers
    ]
    strangers = [t for t in tickets if t["requester_email"].strip().lower() not in customers]
    assert exact and loose and strangers
    assert 0.05 < len(loose) / (len(loose) + len(exact)) < 0.2
    assert 0.05 < len(strangers) / len(tickets) < 0.3


def test_customers_look_right(worlds):
    data = load(worlds["d"])
    customers = data["customers"]
    emails = [c["email"] for c in customers]
    assert len(set(emails)) == len(emails)
    assert all(e == e.lower() and e.split("@")[1] in ("example.com", "example.org") for e in emails)
    assert any(c["updated_at"] > c["created_at"] for c in customers)
    with_signup = {s["customer_id"] for s in data["signups"]}
    assert 0.75 < len(with_signup) / len(customers) < 0.95
    ids = {c["customer_id"] for c in customers}
    # a signup late at night may precede its shop account by a few minutes
    assert len(with_signup - ids) <= 3


def test_signups_carry_campaigns_unknown_campaigns_and_nothing(worlds):
    data = load(worlds["d"])
    known = {c["campaign_id"] for c in data["campaigns"]}
    signups = data["signups"]
    paid = [s for s in signups if s["utm_campaign"] in known]
    unknown = [s for s in signups if s["utm_campaign"] and s["utm_campaign"] not in known]
    organic = [s for s in signups if s["utm_source"] is None]
    assert paid and organic
    assert all(s["utm_medium"] is None and s["utm_campaign"] is None for s in organic)
    assert all(s["utm_source"] for s in unknown)
    assert any(s["updated_at"] > s["signed_up_at"] for s in signups)
    customers = {c["customer_id"]: c["created_at"] for c in data["customers"]}
    lead = [
        customers[s["customer_id"]] - s["signed_up_at"]
        for s in signups
        if s["customer_id"] in customers
    ]
    assert all(timedelta(0) < x < timedelta(hours=2) for x in lead)


def test_time_entries_belong_to_tickets_and_agents(worlds):
    data = load(worlds["d"])
    tickets = {t["ticket_id"]: t for t in data["tickets"]}
    agents = {a["agent_id"] for a in data["agents"]}
    per_ticket: dict[int, int] = {}
    for te in data["time_entries"]:
        assert te["agent_id"] in agents and 3 <= te["minutes"] <= 60
        assert te["logged_at"] >= tickets[te["ticket_id"]]["created_at"]
        per_ticket[te["ticket_id"]] = per_ticket.get(te["ticket_id"], 0) + 1
    assert max(per_ticket.values()) <= 4


# --- the shop in PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def scratch_postgres():
    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"demo_world_test_{uuid.uuid4().hex[:8]}"
            conn.execute(sa.text(f'create database "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL}: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def test_a_postgres_shop_gets_the_same_rows_as_sqlite(worlds, tmp_path, scratch_postgres):
    _gen(tmp_path / "pg", shop_url=scratch_postgres)
    assert not (tmp_path / "pg" / "shop.sqlite").exists()
    pg = shop_rows(scratch_postgres)
    assert pg == shop_rows(sqlite_url(worlds["d"]))
    assert all(pg[name] for name in SHOP)
    # and again, replacing the tables in place
    world.advance(tmp_path / "pg", days=3, shop_url=scratch_postgres)
    assert shop_rows(scratch_postgres) == shop_rows(sqlite_url(worlds["d3"]))


# --- the signal the marts should find -------------------------------------------------------------


def test_channels_and_support_drive_retention(big_sim):
    """TikTok customers churn more than LinkedIn's; a poor support experience makes
    customers less likely to order again."""
    sim = big_sim
    o, c, t = sim.orders, sim.customers, sim.tickets
    clock = sim.calendar.day_ts(730)
    ok = (o["cancelled_ts"] == NEVER) & (o["ordered_ts"] < clock)
    n = len(c["email"])
    last = np.zeros(n, np.int64)
    first = np.full(n, NEVER)
    np.maximum.at(last, o["customer_no"][ok] - 1, o["ordered_ts"][ok])
    np.minimum.at(first, o["customer_no"][ok] - 1, o["ordered_ts"][ok])
    population = first < clock - 90 * 86_400
    churned = last < clock - 90 * 86_400
    rate = {s: churned[population & (c["source"] == s)].mean() for s in range(ORGANIC + 1)}
    tiktok, linkedin, google = 2, 3, 0
    assert rate[tiktok] > rate[google] > rate[linkedin]

    # docs/marts.md's first_90d_support: tickets in the 90 days after the first order
    bad = np.isin(t["ticket_id"], sim.events["ticket_id"][sim.events["score"] == 1])
    hurt = t["breached"] | bad
    cust = np.maximum(t["customer_no"] - 1, 0)
    early = (
        (t["customer_no"] > 0)
        & (t["created_ts"] >= first[cust])
        & (t["created_ts"] < first[cust] + 90 * 86_400)
    )
    poor, any_ticket = np.zeros(n, bool), np.zeros(n, bool)
    poor[cust[early & hurt]] = True
    any_ticket[cust[early]] = True
    good = any_ticket & ~poor
    assert churned[population & poor].mean() > churned[population & good].mean() + 0.1


def test_weekends_differ_and_the_business_grows(worlds, big_sim):
    orders = frame(worlds["d"], "orders")
    day = pd.to_datetime(orders["ordered_at"])
    weekend = day.dt.day_of_week >= 5
    customers = frame(worlds["d"], "customers").set_index("customer_id")
    business = orders["customer_id"].map(customers["segment"]) != "consumer"
    share_weekend_b2b = (weekend & business).sum() / business.sum()
    share_weekend_b2c = (weekend & ~business).sum() / (~business).sum()
    assert share_weekend_b2b < share_weekend_b2c
    sim = big_sim
    per_day = np.bincount(
        (sim.orders["ordered_ts"] - sim.calendar.start_ts) // 86_400, minlength=730
    )[:730]
    assert per_day[-90:].mean() > 2 * per_day[90:180].mean()
