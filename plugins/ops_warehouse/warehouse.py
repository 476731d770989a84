"""Short read-only queries against the working warehouse, DuckDB or PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from ops_warehouse.settings import Settings


def query(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Run one query (``?`` placeholders) and return all rows."""
    return query_with_columns(settings, sql, params)[1]


def query_with_columns(
    settings: Settings, sql: str, params: list[Any] | None = None
) -> tuple[list[str], list[tuple]]:
    """Run one query (``?`` placeholders); return its column names and all rows."""
    if settings.warehouse == "postgres":
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(settings.postgres_url)
        with psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database,
        ) as con:
            cursor = con.execute(sql.replace("?", "%s"), params or [])
            return [d[0] for d in cursor.description], cursor.fetchall()
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        cursor = con.execute(sql, params or [])
        return [d[0] for d in cursor.description], cursor.fetchall()
