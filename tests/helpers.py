"""Snapshots of sources and raw tables as comparable Python values (test helpers)."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import sqlalchemy as sa

from ops_warehouse.contracts import ENTITIES, Entity
from ops_warehouse.settings import Settings


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
    """Every raw table's contract columns (load metadata left out)."""
    out = {}
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        for entity in ENTITIES:
            cols = ", ".join(f'"{f.name}"' for f in entity.fields)
            if entity.mode == "files":
                cols = "_file_name, " + cols
            rows = con.execute(f"select {cols} from {entity.raw_schema}.{entity.name}").fetchall()
            if entity.mode == "files":
                out[entity.name] = sorted(
                    (r[0], *(norm(v, f.type) for v, f in zip(r[1:], entity.fields, strict=True)))
                    for r in rows
                )
            else:
                out[entity.name] = sorted(
                    tuple(norm(v, f.type) for v, f in zip(r, entity.fields, strict=True))
                    for r in rows
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
