"""The simulated world as its source systems show it at a clock.

The simulation knows every lifecycle to its end; a source system only knows what has
happened before the clock. For each row: it exists once it was created before the clock;
its current values are those of its latest change before the clock, and its
``updated_at`` is the time of that change. Ad numbers of the last three days are not
final yet (restatement).

Ids that are not given at birth (refunds, ticket events, time entries) are ranks in time
order: the rows before an earlier clock are the same in every later world and always
rank first, so their ids never change either.

Every table comes out with exactly the contract's fields and Arrow types.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ops_demo.genesis import CAMPAIGN_STATUSES, CHANNELS, DAY, NO_END, OBJECTIVES, TEAMS
from ops_demo.simulation import (
    COUNTRIES,
    EVENT_TYPES,
    NEVER,
    PRIORITIES,
    ROLES,
    SCORES,
    SEGMENTS,
    TICKET_CATEGORIES,
    TICKET_CHANNELS,
    Simulation,
)
from ops_warehouse.pipeline.contracts import CURRENCIES, ORDER_STATUSES, TICKET_STATUSES, entity

ARROW_TYPES = {
    "text": pa.string(),
    "int": pa.int64(),
    "decimal": pa.float64(),
    "float": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "bool": pa.bool_(),
}
# share of the final numbers an ad platform reports for a day 1, 2 and 3 days old
RESTATED_SHARE = {1: 0.85, 2: 0.93, 3: 0.98}


def arrow_table(name: str, columns: dict[str, object]) -> pa.Table:
    """A table with exactly the contract's fields, in contract order, with Arrow types."""
    e = entity(name)
    if set(columns) != set(e.field_names):
        raise ValueError(
            f"{name}: columns {sorted(columns)} do not match the contract {sorted(e.field_names)}"
        )
    arrays, fields = [], []
    for f in e.fields:
        arrays.append(_arrow_array(columns[f.name], f.type))
        fields.append(pa.field(f.name, ARROW_TYPES[f.type], nullable=f.nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _arrow_array(values: object, kind: str) -> pa.Array:
    typ = ARROW_TYPES[kind]
    if isinstance(values, pa.Array):
        return values.cast(typ)
    arr = np.asarray(values)
    if kind == "timestamp":
        return pa.array(arr.astype(np.int64) * 1_000_000, type=pa.int64()).cast(typ)
    if kind == "date":
        return pa.array(arr.astype(np.int32), type=pa.int32()).cast(typ)
    if kind == "decimal":
        return pa.array(np.round(arr.astype(np.float64), 2), type=typ)
    if arr.dtype == object:
        return pa.array(arr.tolist(), type=typ)
    return pa.array(arr, type=typ)


def ids(prefix: str, numbers: np.ndarray, width: int, suffix: np.ndarray | None = None) -> pa.Array:
    """Text ids such as C0000042 (plus "-<suffix>"), formatted in Arrow's C++ kernels."""
    digits = pc.utf8_lpad(
        pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0"
    )
    parts = [prefix, digits]
    if suffix is not None:
        parts += ["-", pa.array(np.asarray(suffix, dtype=np.int64)).cast(pa.string())]
    return pc.binary_join_element_wise(*parts, "")


def customer_ids(numbers: np.ndarray) -> pa.Array:
    return ids("C", numbers, 7)


def order_ids(numbers: np.ndarray) -> pa.Array:
    return ids("O", numbers, 8)


def cents(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64) / 100, 2)


def nullable(values: np.ndarray, missing: np.ndarray, kind: str) -> pa.Array:
    values = np.asarray(values)
    if kind == "date":  # Arrow builds date32 from int32 days
        values = values.astype(np.int32)
    return pa.array(values, type=ARROW_TYPES[kind], mask=np.asarray(missing, bool))


def _codes(names: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
    return np.array(names, dtype=object)[np.asarray(codes, dtype=np.int64)]


def _latest_before(
    group: np.ndarray, ts: np.ndarray, clock: int, tiebreak: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(groups, index of each group's latest event before the clock)."""
    seen = np.flatnonzero(ts < clock)
    keys = (ts[seen],) if tiebreak is None else (tiebreak[seen], ts[seen])
    order = seen[np.lexsort((*keys, group[seen]))]
    last = np.r_[group[order][1:] != group[order][:-1], True] if len(order) else np.zeros(0, bool)
    return group[order][last], order[last]


def _rank_ids(ts: np.ndarray, *tiebreaks: np.ndarray, first: int = 1) -> np.ndarray:
    """Ids in time order (ties: the tiebreaks, then generation order)."""
    order = np.lexsort((np.arange(len(ts)), *reversed(tiebreaks), ts))
    ids = np.empty(len(ts), dtype=np.int64)
    ids[order] = np.arange(first, first + len(ts))
    return ids


def _day_numbers(sim: Simulation, day: np.ndarray) -> np.ndarray:
    """Simulation day numbers -> days since the epoch (Arrow date32)."""
    return sim.calendar.start_ts // DAY + np.asarray(day, dtype=np.int64)


def campaigns(sim: Simulation, clock: int) -> pa.Table:
    c = sim.campaigns
    idx, ev = _latest_before(c.ev_campaign, c.ev_ts, clock)
    open_ended = c.end_day[idx] == NO_END
    return arrow_table(
        "campaigns",
        {
            "campaign_id": c.campaign_id[idx],
            "campaign_name": c.name[idx],
            "channel": np.array([CHANNELS[k].name for k in c.channel[idx]], dtype=object),
            "objective": _codes(OBJECTIVES, c.objective[idx]),
            "status": _codes(CAMPAIGN_STATUSES, c.ev_status[ev]),
            "start_date": _day_numbers(sim, c.start_day[idx]),
            "end_date": nullable(
                _day_numbers(sim, np.where(open_ended, 0, c.end_day[idx])), open_ended, "date"
            ),
            "daily_budget": cents(c.ev_budget[ev]),
            "currency": np.array([CHANNELS[k].currency for k in c.channel[idx]], dtype=object),
            "updated_at": c.ev_ts[ev],
        },
    )


def ad_performance(sim: Simulation, clock: int) -> pa.Table:
    a, c = sim.ads, sim.campaigns
    clock_day = (clock - sim.calendar.start_ts) // DAY
    keep = np.flatnonzero(a["day"] < clock_day)
    keep = keep[np.lexsort((c.campaign_id[a["campaign"][keep]], a["day"][keep]))]
    age = clock_day - a["day"][keep]
    jitter = a["restate_jitter"][keep]
    share = np.ones(len(keep))
    for days_old, base in RESTATED_SHARE.items():
        m = age == days_old
        share[m] = np.minimum(base + jitter[m] * (1 - base) * 5, 1.0)
    impressions = np.rint(a["impressions"][keep] * share).astype(np.int64)
    clicks = np.minimum(np.rint(a["clicks"][keep] * share).astype(np.int64), impressions)
    camp = a["campaign"][keep]
    return arrow_table(
        "ad_performance",
        {
            "date": _day_numbers(sim, a["day"][keep]),
            "channel": np.array([CHANNELS[k].name for k in c.channel[camp]], dtype=object),
            "campaign_id": c.campaign_id[camp],
            "impressions": impressions,
            "clicks": clicks,
            "spend": cents(np.rint(a["spend"][keep] * share)),
            "currency": np.array([CHANNELS[k].currency for k in c.channel[camp]], dtype=object),
            "platform_conversions": np.rint(a["conversions"][keep] * share).astype(np.int64),
        },
    )


def signups(sim: Simulation, clock: int) -> pa.Table:
    s = sim.signups
    keep = np.flatnonzero(s["signed_up_ts"] < clock)
    fixed = s["fix_ts"][keep] < clock
    landing = np.where(fixed, s["landing_after"][keep], s["landing_before"][keep])
    return arrow_table(
        "signups",
        {
            "signup_id": ids("S", s["signup_no"][keep], 8),
            "customer_id": customer_ids(s["customer_no"][keep]),
            "email": s["email"][keep],
            "signed_up_at": s["signed_up_ts"][keep],
            "utm_source": s["utm_source"][keep],
            "utm_medium": s["utm_medium"][keep],
            "utm_campaign": s["utm_campaign"][keep],
            "landing_page": landing,
            "updated_at": np.where(fixed, s["fix_ts"][keep], s["signed_up_ts"][keep]),
        },
    )


def customers(sim: Simulation, clock: int) -> pa.Table:
    c = sim.customers
    keep = np.flatnonzero(c["created_ts"] < clock)
    changed = c["change_ts"][keep] < clock
    return arrow_table(
        "customers",
        {
            "customer_id": customer_ids(keep + 1),
            "email": c["email"][keep],
            "full_name": c["full_name"][keep],
            "country": _codes(
                COUNTRIES, np.where(changed, c["country2"][keep], c["country"][keep])
            ),
            "segment": _codes(SEGMENTS, np.where(changed, c["segment2"][keep], c["segment"][keep])),
            "created_at": c["created_ts"][keep],
            "updated_at": np.where(changed, c["change_ts"][keep], c["created_ts"][keep]),
        },
    )


def products(sim: Simulation, clock: int) -> pa.Table:
    p = sim.products
    idx, ev = _latest_before(p.ev_product, p.ev_ts, clock)
    return arrow_table(
        "products",
        {
            "product_id": p.product_id[idx],
            "sku": p.sku[idx],
            "product_name": p.name[idx],
            "category": p.category[idx],
            "list_price": cents(p.ev_list_price[ev]),
            "unit_cost": cents(p.ev_unit_cost[ev]),
            "updated_at": p.ev_ts[ev],
        },
    )


def orders(sim: Simulation, clock: int) -> pa.Table:
    o = sim.orders
    keep = np.flatnonzero(o["ordered_ts"] < clock)
    # columns in the order of contracts.ORDER_STATUSES; the status is the latest step
    # before the clock
    steps = np.stack(
        [
            o[k][keep]
            for k in (
                "ordered_ts",
                "paid_ts",
                "shipped_ts",
                "completed_ts",
                "cancelled_ts",
                "refunded_ts",
            )
        ],
        axis=1,
    )
    seen = np.where(steps < clock, steps, -1)
    status = seen.argmax(axis=1)
    return arrow_table(
        "orders",
        {
            "order_id": order_ids(o["order_no"][keep]),
            "customer_id": customer_ids(o["customer_no"][keep]),
            "order_status": _codes(ORDER_STATUSES, status),
            "ordered_at": o["ordered_ts"][keep],
            "currency": _codes(CURRENCIES, o["currency"][keep]),
            "subtotal": cents(o["subtotal"][keep]),
            "discount": cents(o["discount"][keep]),
            "shipping": cents(o["shipping"][keep]),
            "tax": cents(o["tax"][keep]),
            "total": cents(o["total"][keep]),
            "updated_at": seen.max(axis=1),
        },
    )


def order_items(sim: Simulation, clock: int) -> pa.Table:
    i, o = sim.items, sim.orders
    ordered = o["ordered_ts"][i["order_no"] - 1]  # order numbers are 1, 2, 3, ...
    keep = np.flatnonzero(ordered < clock)
    return arrow_table(
        "order_items",
        {
            "order_item_id": ids("O", i["order_no"][keep], 8, suffix=i["line"][keep]),
            "order_id": order_ids(i["order_no"][keep]),
            "product_id": sim.products.product_id[i["product"][keep]],
            "quantity": i["quantity"][keep],
            "unit_price": cents(i["unit_price"][keep]),
            "updated_at": ordered[keep],
        },
    )


def refunds(sim: Simulation, clock: int) -> pa.Table:
    r = sim.refunds
    keep = np.flatnonzero(r["refunded_ts"] < clock)
    rank = _rank_ids(r["refunded_ts"][keep], r["order_no"][keep])
    keep, rank = keep[np.argsort(rank)], np.sort(rank)
    return arrow_table(
        "refunds",
        {
            "refund_id": ids("R", rank, 8),
            "order_id": order_ids(r["order_no"][keep]),
            "refunded_at": r["refunded_ts"][keep],
            "amount": cents(r["amount"][keep]),
            "reason": r["reason"][keep],
            "updated_at": r["refunded_ts"][keep],
        },
    )


def fx_rates(sim: Simulation, clock: int) -> pa.Table:
    f = sim.fx
    clock_day = (clock - sim.calendar.start_ts) // DAY
    keep = np.flatnonzero(f["day"] < clock_day)
    keep = keep[np.lexsort((f["currency"][keep], f["day"][keep]))]
    return arrow_table(
        "fx_rates",
        {
            "rate_date": _day_numbers(sim, f["day"][keep]),
            "currency": _codes(CURRENCIES, f["currency"][keep]),
            "rate_to_usd": f["rate"][keep],
        },
    )


def tickets(sim: Simulation, clock: int) -> pa.Table:
    t, e = sim.tickets, sim.events
    keep = np.flatnonzero(t["created_ts"] < clock)
    first_id = int(t["ticket_id"][0]) if len(t["ticket_id"]) else 0
    row = e["ticket_id"] - first_id  # ticket ids are consecutive
    status = np.zeros(len(t["ticket_id"]), dtype=np.int64)  # "new"
    is_status = e["new_status"] >= 0
    # only status changes count for the status (other events never come before the clock)
    ticket_of, ev = _latest_before(
        row, np.where(is_status, e["ts"], NEVER), clock, tiebreak=e["seq"]
    )
    status[ticket_of] = e["new_status"][ev]
    updated = np.zeros(len(t["ticket_id"]), dtype=np.int64)
    seen = e["ts"] < clock
    np.maximum.at(updated, row[seen], e["ts"][seen])
    assigned = t["assigned_ts"][keep] < clock
    return arrow_table(
        "tickets",
        {
            "ticket_id": t["ticket_id"][keep],
            "requester_email": t["email"][keep],
            "subject": t["subject"][keep],
            "category": _codes(TICKET_CATEGORIES, t["category"][keep]),
            "channel": _codes(TICKET_CHANNELS, t["channel"][keep]),
            "priority": _codes(PRIORITIES, t["priority"][keep]),
            "status": _codes(TICKET_STATUSES, status[keep]),
            "assignee_id": nullable(t["assignee_id"][keep], ~assigned, "int"),
            "created_at": t["created_ts"][keep],
            "updated_at": updated[keep],
        },
    )


def ticket_events(sim: Simulation, clock: int) -> pa.Table:
    e = sim.events
    keep = np.flatnonzero(e["ts"] < clock)
    rank = _rank_ids(e["ts"][keep], e["ticket_id"][keep], e["seq"][keep])
    keep, rank = keep[np.argsort(rank)], np.sort(rank)
    public, status, score = e["is_public"][keep], e["new_status"][keep], e["score"][keep]
    return arrow_table(
        "ticket_events",
        {
            "event_id": rank,
            "ticket_id": e["ticket_id"][keep],
            "created_at": e["ts"][keep],
            "event_type": _codes(EVENT_TYPES, e["event_type"][keep]),
            "author_role": _codes(ROLES, e["role"][keep]),
            "is_public": nullable(public == 1, public < 0, "bool"),
            "new_status": np.where(
                status >= 0, _codes(TICKET_STATUSES, np.maximum(status, 0)), None
            ),
            "score": np.where(score >= 0, _codes(SCORES, np.maximum(score, 0)), None),
        },
    )


def agents(sim: Simulation, clock: int) -> pa.Table:
    a = sim.agents
    return arrow_table(
        "agents",
        {
            "agent_id": a.agent_id,
            "agent_name": a.name,
            "team": _codes(TEAMS, a.team),
            "hourly_cost": cents(a.hourly_cost),
            "currency": a.currency,
            "active": a.left_ts >= clock,
        },
    )


def time_entries(sim: Simulation, clock: int) -> pa.Table:
    te = sim.time_entries
    keep = np.flatnonzero(te["logged_ts"] < clock)
    rank = _rank_ids(te["logged_ts"][keep], te["ticket_id"][keep])
    keep, rank = keep[np.argsort(rank)], np.sort(rank)
    return arrow_table(
        "time_entries",
        {
            "time_entry_id": rank,
            "ticket_id": te["ticket_id"][keep],
            "agent_id": te["agent_id"][keep],
            "minutes": te["minutes"][keep],
            "logged_at": te["logged_ts"][keep],
        },
    )


API_TABLES = {
    "ad_performance": ad_performance,
    "campaigns": campaigns,
    "signups": signups,
    "tickets": tickets,
    "ticket_events": ticket_events,
    "agents": agents,
    "time_entries": time_entries,
}
SHOP_TABLES = {
    "customers": customers,
    "products": products,
    "orders": orders,
    "order_items": order_items,
    "refunds": refunds,
    "fx_rates": fx_rates,
}
