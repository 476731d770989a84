"""Short read-only queries against the working warehouse, on every engine."""

from __future__ import annotations

from typing import Any

from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.engines import engine


def query(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Run one query (``?`` placeholders) and return all rows."""
    return query_with_columns(settings, sql, params)[1]


def query_with_columns(
    settings: Settings, sql: str, params: list[Any] | None = None
) -> tuple[list[str], list[tuple]]:
    """Run one query (``?`` placeholders); return its column names and all rows."""
    with engine(settings).read_only() as reader:
        cursor = reader.execute(sql, params or [])
        return [d[0] for d in cursor.description], cursor.fetchall()


def query_models(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Run one query on dbt's models (``?`` placeholders): in the working warehouse, or in
    Spark where Spark builds them."""
    with engine(settings).models_reader() as reader:
        return reader.fetch(sql, params or [])
