"""Short read-only queries against the working warehouse, DuckDB or PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from ops_warehouse.settings import Settings


def query(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Run one query (``?`` placeholders) and return all rows."""
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
            return con.execute(sql.replace("?", "%s"), params or []).fetchall()
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()
