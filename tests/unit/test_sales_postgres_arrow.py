"""The PostgreSQL shop's columnar reader (ADBC into Arrow) against the row-by-row one
(SQLAlchemy): the same tables, quarantined rows and cursors, also through a ``shop_sql``
mapping, and a fallback to rows where the driver would hand a column over otherwise."""

from __future__ import annotations

import logging
import os
import secrets
import types
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import sqlalchemy as sa

from ops_warehouse.pipeline.contracts import entities_of, entity
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.shop_schema import metadata
from ops_warehouse.pipeline.sources import arrow_rows, sales
from ops_warehouse.pipeline.sources.window import Window
from tests.conftest import UNTIL, drop_pg_database, make_settings, scratch_pg_database
from tests.helpers import day_window, raw_snapshot
from tests.unit.test_shop_sql_mapping import RENAMED

WINDOW = Window.of(None, datetime(UNTIL.year, UNTIL.month, UNTIL.day, tzinfo=UTC))


def copy_tables(sqlite_path, pg_url: str, *, renamed: bool = False) -> None:
    """The demo shop's tables copied into PostgreSQL, under the contract's names or under
    the team's names of ``RENAMED`` (tables created by SQLAlchemy from shop_schema.py)."""
    target_meta = sa.MetaData()
    targets = {}
    for name, original in metadata.tables.items():
        table, columns = RENAMED[name] if renamed else (name, {})
        targets[name] = (
            sa.Table(
                table,
                target_meta,
                *[sa.Column(columns.get(c.name, c.name), c.type) for c in original.columns],
            ),
            columns,
        )
    source = sa.create_engine(f"sqlite:///{sqlite_path}")
    target = sa.create_engine(pg_url)
    target_meta.create_all(target)
    with source.connect() as read, target.begin() as write:
        for name, (table, columns) in targets.items():
            rows = [
                {columns.get(k, k): v for k, v in r._mapping.items()}
                for r in read.execute(sa.select(metadata.tables[name]))
            ]
            write.execute(table.insert(), rows)
    source.dispose()
    target.dispose()


@pytest.fixture
def pg_shop(world_dir) -> Iterator[str]:
    """The small world's shop in a PostgreSQL database of its own (dropped afterwards)."""
    name = f"ops_test_shop_{os.getpid()}_{secrets.token_hex(4)}"
    url = scratch_pg_database(name)
    try:
        copy_tables(world_dir / "shop.sqlite", url)
        copy_tables(world_dir / "shop.sqlite", url, renamed=True)
        yield url
    finally:
        sa.create_engine(url).dispose()
        drop_pg_database(name)


def read(url: str, name: str, *, columnar: bool, state: dict | None = None, source=None):
    """One entity read through ``read_table``; with ``columnar``, the ADBC reader must have
    been used (no silent fallback) and its columns converted in Arrow, not value by value."""
    engine = sa.create_engine(url)
    state = {} if state is None else state
    used = []
    original = sales._read_postgres_arrow

    def spy(*args):
        table = original(*args)
        used.append(table is not None)
        return table

    def per_value(*args):
        raise AssertionError(f"{name}: the columnar read went value by value")

    with engine.connect() as conn, pytest.MonkeyPatch.context() as mp:
        mp.setattr(sales, "_read_postgres_arrow", spy if columnar else lambda *args: None)
        if columnar:
            mp.setattr(arrow_rows, "columns_to_batch", per_value)
        batches = list(sales.read_table(conn, entity(name), state, WINDOW, source))
    engine.dispose()
    if columnar:
        assert used == [True], name
    table = pa.concat_tables([b.table for b in batches]) if batches else None
    bad = pa.concat_tables([b.quarantined for b in batches]) if batches else None
    return table, bad, state


def by_key(name: str, table: pa.Table) -> pa.Table:
    # rows with the same cursor come in either order (ORDER BY the cursor only)
    return table.sort_by([(k, "ascending") for k in entity(name).primary_key])


def sqlite_read(world_dir, name: str) -> pa.Table:
    engine = sa.create_engine(f"sqlite:///{world_dir / 'shop.sqlite'}")
    with engine.connect() as conn:
        batches = list(sales.read_table(conn, entity(name), {}, WINDOW))
    engine.dispose()
    return pa.concat_tables([b.table for b in batches])


@pytest.mark.parametrize("cursor", [None, "2026-11-15T00:00:00+00:00"])
def test_columnar_read_equals_row_by_row_read(pg_shop, world_dir, cursor):
    for e in entities_of("sales"):
        state = {} if cursor is None else {"cursor": cursor}
        fast, fast_bad, fast_state = read(pg_shop, e.name, columnar=True, state=dict(state))
        slow, slow_bad, slow_state = read(pg_shop, e.name, columnar=False, state=dict(state))
        assert fast_state == slow_state, e.name
        if cursor is not None and slow is None:
            assert fast is None, e.name  # nothing changed since the cursor
            continue
        assert fast.num_rows > 0 and fast_bad.num_rows == slow_bad.num_rows == 0, e.name
        # values and types: decimals to the cent, UTC times
        assert by_key(e.name, fast).equals(by_key(e.name, slow)), e.name
        if cursor is None:
            # the same rows as the SQLite shop they were copied from
            assert by_key(e.name, fast).equals(by_key(e.name, sqlite_read(world_dir, e.name)))
        else:
            bound = datetime.fromisoformat(cursor)
            assert min(fast[e.cursor].to_pylist()) >= (
                bound.date() if e.cursor == "rate_date" else bound
            ), e.name


def test_a_renamed_shop_reads_the_same_through_either_reader(pg_shop):
    for e in entities_of("sales"):
        table, columns = RENAMED[e.name]
        source = sales.SourceTable(e.name, table, columns, mapped=True)
        fast = read(pg_shop, e.name, columnar=True, source=source)[0]
        slow = read(pg_shop, e.name, columnar=False, source=source)[0]
        plain = read(pg_shop, e.name, columnar=True)[0]
        assert fast.column_names == e.field_names, e.name
        assert by_key(e.name, fast).equals(by_key(e.name, slow)), e.name
        assert by_key(e.name, fast).equals(by_key(e.name, plain)), e.name


def test_rows_breaking_a_rule_are_quarantined_alike(pg_shop):
    engine = sa.create_engine(pg_shop)
    with engine.begin() as conn:
        item = conn.execute(
            sa.text("select order_item_id from order_items order by order_item_id offset 5")
        ).first()[0]
        conn.execute(
            sa.text("update order_items set unit_price = -3.50 where order_item_id = :i"),
            {"i": item},
        )
        order = conn.execute(sa.text("select order_id from orders order by order_id")).first()[0]
        conn.execute(
            sa.text("update orders set ordered_at = '2031-01-01 00:00+00' where order_id = :o"),
            {"o": order},
        )
    engine.dispose()
    expected = {
        "order_items": (item, "field 'unit_price' is negative (value -3.50)"),
        "orders": (order, "field 'ordered_at' is in the future (value 2031-01-01T00:00:00+00:00)"),
    }
    for name, (key, reason) in expected.items():
        fast, fast_bad, _ = read(pg_shop, name, columnar=True)
        slow, slow_bad, _ = read(pg_shop, name, columnar=False)
        assert by_key(name, fast).equals(by_key(name, slow)), name
        assert fast_bad.equals(slow_bad), name  # the same reasons and payloads
        assert fast_bad["record_key"].to_pylist() == [f'["{key}"]'], name
        assert fast_bad["reason"][0].as_py().startswith(reason), name
        assert key not in fast[entity(name).primary_key[0]].to_pylist()


def test_a_column_the_driver_hands_over_otherwise_is_read_row_by_row(pg_shop):
    # a flag the contract does not know (the row reader loads str(True) == "True", Arrow
    # would cast "true"), and a NaN price (NUMERIC holds one, the contract's decimal not)
    engine = sa.create_engine(pg_shop)
    with engine.begin() as conn:
        conn.execute(sa.text("alter table customers add column is_vip boolean default true"))
        conn.execute(sa.text("alter table customers add column notes text default 'x'"))
        conn.execute(sa.text("update products set unit_cost = 'NaN' where category is not null"))
    with engine.connect() as conn:
        table = sales._table(conn, entity("customers"))
        assert sales._read_postgres_arrow(conn, entity("customers"), sa.select(table)) is None
        kept = sa.select(table.c.customer_id, table.c.notes)
        assert sales._read_postgres_arrow(conn, entity("customers"), kept).num_rows > 0
        table = sales._table(conn, entity("products"))
        assert sales._read_postgres_arrow(conn, entity("products"), sa.select(table)) is None
    engine.dispose()
    for name in ("customers", "products"):
        slow, slow_bad, slow_state = read(pg_shop, name, columnar=False)
        fallen_back, bad, state = read_as_configured(pg_shop, name)
        assert by_key(name, fallen_back).equals(by_key(name, slow)), name
        assert bad.equals(slow_bad) and state == slow_state, name
    customers = read_as_configured(pg_shop, "customers")[0]
    assert set(customers.column("is_vip").to_pylist()) == {"True"}
    assert read_as_configured(pg_shop, "products")[1].num_rows > 0  # NaN costs quarantined


def read_as_configured(url: str, name: str):
    """An entity read as a load reads it: the columnar reader, falling back to rows."""
    engine = sa.create_engine(url)
    state: dict = {}
    with engine.connect() as conn:
        batches = list(sales.read_table(conn, entity(name), state, WINDOW))
    engine.dispose()
    tables = [
        pa.concat_tables([getattr(b, part) for b in batches]) for part in ("table", "quarantined")
    ]
    return tables[0], tables[1], state


def test_a_driver_error_names_no_password(pg_shop, caplog):
    password = "n0t-" + secrets.token_hex(8)
    url = sa.engine.make_url(pg_shop).set(password=password, database="no_such_shop_database")
    engine = sa.create_engine(url)
    conn = types.SimpleNamespace(engine=engine, dialect=engine.dialect)
    table = sa.table("orders", sa.column("order_id"))
    with caplog.at_level(logging.INFO, logger=sales.__name__):
        assert sales._read_postgres_arrow(conn, entity("orders"), sa.select(table)) is None
    assert "no_such_shop_database" in caplog.text  # the driver's reason is logged
    assert password not in caplog.text
    engine.dispose()


def test_a_postgres_shop_loads_the_same_raw_rows_as_the_sqlite_one(
    tmp_path, world_dir, server, pg_shop
):
    reference = make_settings(tmp_path / "sqlite", world_dir, server.url)
    on_postgres = make_settings(tmp_path / "postgres", world_dir, server.url, shop_db_url=pg_shop)
    first = load_source("sales", day_window(UNTIL), settings=reference)
    second = load_source("sales", day_window(UNTIL), settings=on_postgres)
    expected, raw = raw_snapshot(reference), raw_snapshot(on_postgres)
    for e in entities_of("sales"):
        assert raw[e.name] and raw[e.name] == expected[e.name], e.name
        assert second.entities[e.name].rows_loaded == first.entities[e.name].rows_loaded
