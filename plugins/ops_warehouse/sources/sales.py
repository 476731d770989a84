"""Sales: the shop's transactional database, read through SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa

from ops_warehouse.contracts import Entity
from ops_warehouse.errors import SourceSchemaError, SourceUnavailableError
from ops_warehouse.settings import Settings
from ops_warehouse.sources.arrow_rows import Batch, columns_to_batch
from ops_warehouse.sources.window import Window, advance_cursor, cursor_lower_bound

BATCH_ROWS = 50_000


def engine(settings: Settings) -> sa.Engine:
    try:
        return sa.create_engine(settings.shop_db_url)
    except Exception as exc:  # bad URL or missing driver
        raise SourceUnavailableError(
            f"sales: cannot open the shop database: {exc}. Check the setting OPS_SHOP_DB_URL."
        ) from exc


def _table(conn: sa.Connection, entity: Entity) -> sa.Table:
    """The shop's table as it really is (reflected), checked against the contract."""
    try:
        table = sa.Table(entity.name, sa.MetaData(), autoload_with=conn)
    except sa.exc.NoSuchTableError:
        raise SourceSchemaError(
            f"sales.{entity.name}: the shop database has no table {entity.name!r}"
        ) from None
    return table


def read_table(conn: sa.Connection, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
    table = _table(conn, entity)
    cursor_col = table.c[entity.cursor] if entity.cursor in table.c else None
    if cursor_col is None:
        raise SourceSchemaError(
            f"sales.{entity.name}: cursor column {entity.cursor!r} is missing from the shop database"
        )
    query = sa.select(table)
    lower = cursor_lower_bound(state, window)
    upper: datetime | object = window.end
    if entity.cursor == "rate_date":
        upper = window.end.date()
        lower = lower.date() if lower is not None else None
    else:
        # SQLite keeps timestamps as naive UTC text; PostgreSQL compares aware values.
        naive = conn.dialect.name == "sqlite"
        upper = window.end.replace(tzinfo=None) if naive else window.end
        if lower is not None and naive:
            lower = lower.replace(tzinfo=None)
    if lower is not None:
        query = query.where(cursor_col >= lower)
    query = query.where(cursor_col < upper).order_by(cursor_col)
    result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(query)
    names = list(result.keys())
    for partition in result.partitions():
        columns = [list(col) for col in zip(*partition, strict=True)]
        batch = columns_to_batch(entity, names, columns, window.end)
        advance_cursor(state, batch.table, entity.cursor)
        yield batch
