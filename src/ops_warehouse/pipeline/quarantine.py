"""Replay quarantined rows after a fix (a corrected contract, or a source that re-serves
them corrected): rows that now pass every rule move to their raw table, in one transaction;
the others stay in quarantine with their current reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline.contracts import entities_of
from ops_warehouse.pipeline.contracts import entity as entity_named
from ops_warehouse.pipeline.loading import QUARANTINE_TABLE
from ops_warehouse.pipeline.sources.arrow_rows import rows_to_batch
from ops_warehouse.settings import Settings


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
    import duckdb
    import pyarrow as pa

    if settings.warehouse != "duckdb":
        raise OpsWarehouseError("replay runs on the DuckDB warehouse only for now")
    sources = [source] if source else ["marketing", "sales", "support"]
    summary = ReplaySummary()
    now = datetime.now(UTC)
    # during a replay the "future" rule allows nothing after tomorrow (now + 1 day)
    window_end = now
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute("begin transaction")
        for src in sources:
            schema = f"raw_{src}"
            exists = con.execute(
                "select count(*) from information_schema.tables where table_schema = ? and "
                "table_name = ?",
                [schema, QUARANTINE_TABLE],
            ).fetchone()[0]
            if not exists:
                continue
            for ent in entities_of(src):
                if entity and ent.name != entity:
                    continue
                rows = con.execute(
                    f"select record_key, reason, payload from {schema}.{QUARANTINE_TABLE} "
                    "where entity = ?",
                    [ent.name],
                ).fetchall()
                if not rows:
                    continue
                payloads = [json.loads(r[2]) for r in rows]
                batch = rows_to_batch(entity_named(ent.name), payloads, window_end)
                good = batch.table
                if good.num_rows:
                    n = good.num_rows
                    good = good.append_column(
                        "_loaded_at", pa.array([now] * n, pa.timestamp("us", tz="UTC"))
                    ).append_column("_load_id", pa.array([run_id] * n, pa.string()))
                    con.register("replayed", good)
                    key = " and ".join(f'r."{k}" = t."{k}"' for k in ent.primary_key)
                    con.execute(
                        f"delete from {schema}.{ent.name} t where exists "
                        f"(select 1 from replayed r where {key})"
                    )
                    con.execute(f"insert into {schema}.{ent.name} by name select * from replayed")
                    con.unregister("replayed")
                # quarantine keeps exactly the rows that still fail, with today's reason
                con.execute(f"delete from {schema}.{QUARANTINE_TABLE} where entity = ?", [ent.name])
                if batch.quarantined.num_rows:
                    q = batch.quarantined
                    n = q.num_rows
                    q = q.append_column(
                        "run_id", pa.array([run_id] * n, pa.string())
                    ).append_column(
                        "quarantined_at", pa.array([now] * n, pa.timestamp("us", tz="UTC"))
                    )
                    con.register("still_bad", q)
                    con.execute(
                        f"insert into {schema}.{QUARANTINE_TABLE} by name select * from still_bad"
                    )
                    con.unregister("still_bad")
                summary.replayed[ent.name] = good.num_rows
                summary.still_quarantined[ent.name] = batch.quarantined.num_rows
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.close()
    return summary


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
    settings: Settings, *, as_of_end: datetime, grace_days: int = 2, run_id: str = "sweep"
) -> dict[str, int]:
    """Move rows whose foreign key points nowhere (after the grace period) or whose amount
    has no fx rate to quarantine, in one transaction. Returns rows moved per rule."""
    import duckdb

    cutoff = as_of_end - timedelta(days=grace_days)
    moved: dict[str, int] = {}
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        tables = {
            r[0]
            for r in con.execute(
                "select table_schema || '.' || table_name from information_schema.tables"
            ).fetchall()
        }
        con.execute("begin transaction")
        for source, name, age_col, reason, condition in SWEEP_RULES:
            target = f"raw_{source}.{QUARANTINE_TABLE}"
            if f"raw_{source}.{name}" not in tables:
                continue
            if target not in tables:
                con.execute(
                    f"create table {target} (source varchar, entity varchar, record_key varchar, "
                    "reason varchar, payload varchar, run_id varchar, "
                    "quarantined_at timestamp with time zone)"
                )
                tables.add(target)
            parent = condition.split(" from ")[1].split(" ")[0]
            if parent not in tables:
                continue
            ent = entity_named(name)
            # a list needs one element type: composite keys go as text
            key_list = ", ".join(
                f"r.{k}" if len(ent.primary_key) == 1 else f"cast(r.{k} as varchar)"
                for k in ent.primary_key
            )
            cols = ", ".join(f'"{f.name}" := r."{f.name}"' for f in ent.fields)
            where = f"r.{age_col} < ? and {condition}"
            moved_rows = con.execute(
                f"insert into {target} (source, entity, record_key, reason, payload, run_id, "
                f"quarantined_at) select ?, ?, to_json([{key_list}]), ?, "
                f"to_json(struct_pack({cols})), ?, now() from raw_{source}.{name} r where {where}",
                [source, name, reason, run_id, cutoff if age_col != "date" else cutoff.date()],
            ).fetchone()[0]
            if moved_rows:
                con.execute(
                    f"delete from raw_{source}.{name} r where {where}",
                    [cutoff if age_col != "date" else cutoff.date()],
                )
            moved[f"{name}: {reason}"] = moved_rows
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.close()
    return moved
