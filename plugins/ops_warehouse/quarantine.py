"""Replay quarantined rows after a fix (a corrected contract, or a source that re-serves
them corrected): rows that now pass every rule move to their raw table, in one transaction;
the others stay in quarantine with their current reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ops_warehouse.contracts import entities_of
from ops_warehouse.contracts import entity as entity_named
from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.loading import QUARANTINE_TABLE
from ops_warehouse.settings import Settings
from ops_warehouse.sources.arrow_rows import rows_to_batch


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
