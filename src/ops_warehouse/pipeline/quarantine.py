"""Replay quarantined rows after a fix (a corrected contract, or a source that re-serves
them corrected): rows that now pass every rule move to their raw table, in one transaction,
and are marked replayed (``replayed_at``) in quarantine, which keeps them as the record of
what was set aside when; the others stay pending, with the reason today's rules give."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ops_warehouse.pipeline.audit import record_raw_removal
from ops_warehouse.pipeline.contracts import entities_of, raw_schema, raw_table
from ops_warehouse.pipeline.contracts import entity as entity_named
from ops_warehouse.pipeline.loading import QUARANTINE_TABLE, rule_of
from ops_warehouse.pipeline.sources.arrow_rows import rows_to_batch
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.engines import Connection, engine

REPLAYED_AT = "replayed_at"


@dataclass
class ReplaySummary:
    replayed: dict[str, int] = field(default_factory=dict)
    still_quarantined: dict[str, int] = field(default_factory=dict)


def replay(
    settings: Settings,
    *,
    source: str | None = None,
    entity: str | None = None,
    run_id: str = "replay",
) -> ReplaySummary:
    sources = [source] if source else ["marketing", "sales", "support"]
    summary = ReplaySummary()
    now = datetime.now(UTC)
    # during a replay the "future" rule allows nothing after tomorrow (now + 1 day)
    window_end = now
    with engine(settings).transaction() as db:
        for src in sources:
            schema = raw_schema(src)
            if not db.has_table(schema, QUARANTINE_TABLE):
                continue
            table = f"{schema}.{QUARANTINE_TABLE}"
            db.execute(
                f"alter table {table} add column if not exists {REPLAYED_AT} "
                "timestamp with time zone"
            )
            for ent in entities_of(src):
                if entity and ent.name != entity:
                    continue
                if ent.mode == "files":
                    continue  # a sheet is a snapshot: its rows come back with the fixed file
                rows = db.fetch(
                    f"select record_key, reason, payload from {table} "
                    f"where entity = ? and {REPLAYED_AT} is null",
                    [ent.name],
                )
                if not rows:
                    continue
                payloads = [json.loads(r[2]) for r in rows]
                batch = rows_to_batch(entity_named(ent.name), payloads, window_end)
                good = batch.table.to_pylist()
                if good:
                    key = " and ".join(f'"{k}" = ?' for k in ent.primary_key)
                    db.executemany(
                        f"delete from {schema}.{ent.name} where {key}",
                        [[row[k] for k in ent.primary_key] for row in good],
                    )
                    columns = [*good[0], "_loaded_at", "_load_id"]
                    names = ", ".join(f'"{c}"' for c in columns)
                    marks = ", ".join("?" for _ in columns)
                    db.executemany(
                        f"insert into {schema}.{ent.name} ({names}) values ({marks})",
                        [[*row.values(), now, run_id] for row in good],
                    )
                now_bad = {
                    _canonical(json.loads(r["payload"])): r["reason"]
                    for r in batch.quarantined.to_pylist()
                }
                passed = {_key_of(row, ent.primary_key) for row in good}
                _mark(db, table, ent.name, rows, payloads, now_bad, passed, ent.primary_key, now)
                summary.replayed[ent.name] = len(good)
                summary.still_quarantined[ent.name] = batch.quarantined.num_rows
    return summary


def _mark(
    db: Connection,
    table: str,
    entity: str,
    rows: list[tuple],
    payloads: list[dict],
    now_bad: dict[str, str],
    passed: set[tuple[str, ...]],
    primary_key: tuple[str, ...],
    now: datetime,
) -> None:
    """Mark the quarantined rows that reached raw as replayed; give those still failing the
    reason today's rules give, unless it is the rule they already name (whose reason also
    names where the row came from). A row whose cursor lies after now stays as it was."""
    where = (
        f"entity = ? and record_key = ? and reason = ? and payload = ? and {REPLAYED_AT} is null"
    )
    replayed, reasons = [], []
    for (record_key, reason, payload), record in zip(rows, payloads, strict=True):
        identity = [entity, record_key, reason, payload]
        new_reason = now_bad.get(_canonical(record))
        if new_reason is not None:
            if rule_of(new_reason) != rule_of(reason):
                reasons.append([new_reason, *identity])
        elif _key_of(record, primary_key) in passed:
            replayed.append([now, *identity])
    db.executemany(f"update {table} set {REPLAYED_AT} = ? where {where}", replayed)
    db.executemany(f"update {table} set reason = ? where {where}", reasons)


def _canonical(record: Any) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def _key_of(record: dict, primary_key: tuple[str, ...]) -> tuple[str, ...]:
    """A row's primary key as text: the typed row and its served payload compare equal."""
    return tuple(str(record.get(k)) for k in primary_key)


# "No rate at or before the day" is "the currency's first rate comes after the day, or it has
# none": one aggregate per currency, where a `rate_date <= day` anti-join made DuckDB pair
# every row with every earlier rate (18 GB at scale 10).
FIRST_RATE_AFTER = (
    "coalesce((select min(p.rate_date) from raw_sales.fx_rates p "
    "where p.currency = r.currency) > {day}, true)"
)

# Rules that need other tables: (source, entity, reason, condition on row `r`).
# A row is swept only once it is older than the grace period: its parent may still arrive.
SWEEP_RULES: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "sales",
        "orders",
        "updated_at",
        "foreign key customer_id points to no customer",
        "not exists (select 1 from raw_sales.customers p where p.customer_id = r.customer_id)",
    ),
    (
        "sales",
        "order_items",
        "updated_at",
        "foreign key order_id points to no order",
        "not exists (select 1 from raw_sales.orders p where p.order_id = r.order_id)",
    ),
    (
        "sales",
        "order_items",
        "updated_at",
        "foreign key product_id points to no product",
        "not exists (select 1 from raw_sales.products p where p.product_id = r.product_id)",
    ),
    (
        "support",
        "ticket_events",
        "created_at",
        "foreign key ticket_id points to no ticket",
        "not exists (select 1 from raw_support.tickets p where p.ticket_id = r.ticket_id)",
    ),
    (
        "sales",
        "orders",
        "updated_at",
        "currency has no fx rate at or before the order date",
        FIRST_RATE_AFTER.format(day="cast(r.ordered_at as date)"),
    ),
    (
        "marketing",
        "ad_performance",
        "date",
        "currency has no fx rate at or before the ad date",
        FIRST_RATE_AFTER.format(day="r.date"),
    ),
)


def sweep(
    settings: Settings,
    *,
    as_of_end: datetime,
    grace_days: int = 2,
    run_id: str = "sweep",
    touching: str | None = None,
) -> dict[str, int]:
    """Move rows whose foreign key points nowhere (after the grace period) or whose amount
    has no fx rate to quarantine, in one transaction. Returns rows moved per rule.

    ``touching``: only the rules a load of that source can change, those whose rows or whose
    parent table it loads (a load's own sweep). Each rule reads its whole table, and every
    transform waits for a load of each source, so each rule still runs before every build:
    once a day instead of once per load."""
    cutoff = as_of_end - timedelta(days=grace_days)
    moved: dict[str, int] = {}
    warehouse = engine(settings)
    with warehouse.transaction() as db:
        tables = {
            r[0]
            for r in db.fetch(
                "select table_schema || '.' || table_name from information_schema.tables"
            )
        }
        for source, name, age_col, reason, condition in SWEEP_RULES:
            target = raw_table(source, QUARANTINE_TABLE)
            if raw_table(source, name) not in tables:
                continue
            if target not in tables:
                db.execute(
                    f"create table {target} (source varchar, entity varchar, record_key varchar, "
                    "reason varchar, payload varchar, run_id varchar, "
                    "quarantined_at timestamp with time zone)"
                )
                tables.add(target)
            parent = condition.split(" from ")[1].split(" ")[0]
            if parent not in tables:
                continue
            if (
                touching is not None
                and touching != source
                and not parent.startswith(f"{raw_schema(touching)}.")
            ):
                continue
            ent = entity_named(name)
            # a list needs one element type: composite keys go as text
            key = warehouse.json_array(
                [
                    f"r.{k}" if len(ent.primary_key) == 1 else f"cast(r.{k} as varchar)"
                    for k in ent.primary_key
                ]
            )
            payload = warehouse.json_object({f.name: f'r."{f.name}"' for f in ent.fields})
            where = f"r.{age_col} < ? and {condition}"
            since = cutoff if age_col != "date" else cutoff.date()
            moved_rows = db.modify(
                f"insert into {target} (source, entity, record_key, reason, payload, run_id, "
                f"quarantined_at) select ?, ?, {key}, ?, {payload}, ?, now() "
                f"from raw_{source}.{name} r where {where}",
                [source, name, reason, run_id, since],
            )
            if moved_rows:
                db.execute(f"delete from raw_{source}.{name} r where {where}", [since])
                record_raw_removal(
                    db, raw_table(source, name), moved_rows, f"quarantined: {reason}"
                )
            moved[f"{name}: {reason}"] = moved_rows
    return moved
