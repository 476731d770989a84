"""Short read-only queries against the working warehouse, DuckDB or PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ops_warehouse.settings import Settings


def query(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Run one query (``?`` placeholders) and return all rows."""
    return query_with_columns(settings, sql, params)[1]


def query_with_columns(
    settings: Settings, sql: str, params: list[Any] | None = None
) -> tuple[list[str], list[tuple]]:
    """Run one query (``?`` placeholders); return its column names and all rows."""
    with read_only(settings) as reader:
        cursor = reader.execute(sql, params)
        return [d[0] for d in cursor.description], cursor.fetchall()


@dataclass(frozen=True)
class Reader:
    """One read-only connection (``con``: DuckDB's, or psycopg's) for several queries."""

    con: Any
    engine: str

    def execute(self, sql: str, params: list[Any] | None = None) -> Any:
        """Run one query (``?`` placeholders); returns the cursor."""
        if self.engine == "postgres":
            sql = sql.replace("?", "%s")
        return self.con.execute(sql, params or [])

    def fetch(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self.execute(sql, params).fetchall()


@contextmanager
def read_only(settings: Settings) -> Iterator[Reader]:
    """A read-only connection to the working warehouse, closed on exit."""
    if settings.warehouse == "postgres":
        from ops_warehouse.pipeline.audit import pg_connect

        with pg_connect(settings.postgres_url) as con:
            con.read_only = True
            yield Reader(con, "postgres")
        return
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        yield Reader(con, "duckdb")
