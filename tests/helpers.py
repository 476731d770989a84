"""Snapshots of sources and raw tables as comparable Python values (test helpers)."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import sqlalchemy as sa

from ops_warehouse.pipeline.contracts import ENTITIES, Entity
from ops_warehouse.settings import Settings


def day_window(day: date):
    from datetime import timedelta

    from ops_warehouse.pipeline.sources.window import Window

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Window(start, start + timedelta(days=1))


def norm(value: Any, type_: str) -> Any:
    if value is None:
        return None
    if type_ == "decimal":
        return f"{Decimal(str(value)):.2f}"
    if type_ == "timestamp":
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if type_ == "date":
        return value.isoformat() if isinstance(value, date) else str(value)
    if type_ == "float":
        return round(float(value), 6)
    if type_ == "int":
        return int(value)
    return value


def _rows(entity: Entity, records: list[dict]) -> list[tuple]:
    return sorted(tuple(norm(r.get(f.name), f.type) for f in entity.fields) for r in records)


def source_snapshot(world_dir: Path) -> dict[str, list[tuple]]:
    """Every entity as the source serves it now (read straight from the world's files)."""
    out: dict[str, list[tuple]] = {}
    engine = sa.create_engine(f"sqlite:///{world_dir / 'shop.sqlite'}")
    with engine.connect() as conn:
        for entity in ENTITIES:
            if entity.source == "sales":
                result = conn.execute(sa.text(f"select * from {entity.name}"))
                out[entity.name] = _rows(entity, [dict(r._mapping) for r in result])
            elif entity.mode == "files":
                prefix = entity.name
                records = []
                for path in sorted((world_dir / "landing").glob(f"{prefix}_*.csv")):
                    with path.open() as fh:
                        records += [dict(r, _file=path.name) for r in csv.DictReader(fh)]
                out[entity.name] = sorted(
                    (r["_file"], *(norm(r[f.name], f.type) for f in entity.fields)) for r in records
                )
            else:
                table = pq.read_table(world_dir / "api" / f"{entity.name}.parquet")
                out[entity.name] = _rows(entity, table.to_pylist())
    engine.dispose()
    return out


def raw_snapshot(settings: Settings) -> dict[str, list[tuple]]:
    """Every raw table's contract columns (load metadata left out), on either engine."""
    from ops_warehouse.warehouse.queries import query

    out = {}
    existing = {
        f"{schema}.{table}"
        for schema, table in query(
            settings, "select table_schema, table_name from information_schema.tables"
        )
    }
    for entity in ENTITIES:
        if f"{entity.raw_schema}.{entity.name}" not in existing:
            continue
        cols = ", ".join(f'"{f.name}"' for f in entity.fields)
        if entity.mode == "files":
            cols = "_file_name, " + cols
        rows = query(settings, f"select {cols} from {entity.raw_schema}.{entity.name}")
        if entity.mode == "files":
            out[entity.name] = sorted(
                (r[0], *(norm(v, f.type) for v, f in zip(r[1:], entity.fields, strict=True)))
                for r in rows
            )
        else:
            out[entity.name] = sorted(
                tuple(norm(v, f.type) for v, f in zip(r, entity.fields, strict=True)) for r in rows
            )
    return out


def duplicate_keys(settings: Settings) -> dict[str, int]:
    out = {}
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        for entity in ENTITIES:
            key = ", ".join(f'"{k}"' for k in entity.primary_key)
            if entity.mode == "files":
                key = "_file_name, " + key
            out[entity.name] = con.execute(
                f"select count(*) - count(distinct ({key})) from {entity.raw_schema}.{entity.name}"
            ).fetchone()[0]
    return out


MART_TABLES = (
    "dim_date",
    "dim_customers",
    "dim_campaigns",
    "fct_orders",
    "fct_ad_performance_daily",
    "fct_tickets",
    "kpi_daily",
    "kpi_scorecard",
    "retention_cohorts",
    "churn_monthly",
    "churn_drivers",
    "channel_roi_monthly",
    "campaign_performance_monthly",
    "support_cost_monthly",
)


def read_table(settings: Settings, schema: str, table: str):
    """One warehouse table as a pandas DataFrame with comparable, engine-neutral values.

    Bookkeeping columns (a leading underscore: load times) are left out.
    """
    import pandas as pd

    from ops_warehouse.warehouse.queries import query

    cols = [
        r[0]
        for r in query(
            settings,
            "select column_name from information_schema.columns where table_schema = ? and "
            "table_name = ? order by ordinal_position",
            [schema, table],
        )
    ]
    cols = [c for c in cols if not c.startswith("_")]
    rows = query(settings, f"select {', '.join(cols)} from {schema}.{table}")
    frame = pd.DataFrame([[_neutral(v) for v in row] for row in rows], columns=cols)
    return frame.sort_values(list(frame.columns), ignore_index=True, key=lambda c: c.astype(str))


def _neutral(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(round(value, 6))
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 9)
    return value


def frames_differ(left, right, tolerance: float = 1e-6) -> str | None:
    """A description of the first difference between two tables, or None when they match
    (floating point within ``tolerance``; money columns are numeric and compared exactly)."""
    import math

    if list(left.columns) != list(right.columns):
        return f"columns differ: {list(left.columns)} vs {list(right.columns)}"
    if len(left) != len(right):
        return f"row counts differ: {len(left)} vs {len(right)}"
    for index in range(len(left)):
        for col in left.columns:
            a, b = left.at[index, col], right.at[index, col]
            a_null = a is None or (isinstance(a, float) and math.isnan(a))
            b_null = b is None or (isinstance(b, float) and math.isnan(b))
            if a_null and b_null:
                continue
            if isinstance(a, float) and isinstance(b, float):
                if math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance):
                    continue
            elif a == b:
                continue
            return f"row {index}, column {col}: {a!r} vs {b!r}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(home: Path, scale: str, timeout: int, **env: str) -> subprocess.CompletedProcess:
    """``ops-demo`` (``make demo``) as a new user runs it: in its own home, on a free port,
    none of this process's OPS_/AIRFLOW settings; ``env`` adds or overrides settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    clean.update(
        OPS_HOME=str(home),
        OPS_DEMO_SCALE=scale,
        OPS_DEMO_PORT=str(free_port()),
        COLUMNS="160",
        **env,
    )
    return subprocess.run(
        [str(Path(sys.executable).with_name("ops-demo"))],
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
