"""The SQLite shop's columnar reader (ADBC into Arrow) against the row-by-row one (SQLAlchemy)."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import sqlalchemy as sa

from ops_warehouse.pipeline.contracts import entities_of, entity
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources import sales
from ops_warehouse.pipeline.sources.window import Window
from tests.conftest import UNTIL
from tests.helpers import raw_snapshot
from tests.unit.test_loading import day_window
from tests.unit.test_quarantine import quarantine_rows, rule_of

WINDOW = Window.of(None, datetime(UNTIL.year, UNTIL.month, UNTIL.day, tzinfo=UTC))


def read(world_dir, name: str, *, columnar: bool, state: dict | None = None):
    engine = sa.create_engine(f"sqlite:///{world_dir / 'shop.sqlite'}")
    state = {} if state is None else state
    with engine.connect() as conn, pytest.MonkeyPatch.context() as mp:
        if not columnar:
            mp.setattr(sales, "_read_sqlite_arrow", lambda *args: None)
        batches = list(sales.read_table(conn, entity(name), state, WINDOW))
    table = pa.concat_tables([b.table for b in batches]) if batches else None
    return table, sum(b.quarantined.num_rows for b in batches), state


@pytest.mark.parametrize("cursor", [None, "2026-11-15T00:00:00+00:00"])
def test_columnar_read_equals_row_by_row_read(world_dir, cursor):
    for e in entities_of("sales"):
        state = {} if cursor is None else {"cursor": cursor}
        fast, fast_bad, fast_state = read(world_dir, e.name, columnar=True, state=dict(state))
        slow, slow_bad, slow_state = read(world_dir, e.name, columnar=False, state=dict(state))
        assert (fast_bad, fast_state) == (slow_bad, slow_state), e.name
        if cursor is not None and slow is None:
            assert fast is None, e.name  # nothing changed since the cursor
            continue
        assert fast.num_rows > 0, e.name
        assert fast.equals(slow), e.name  # values and types: decimals to the cent, UTC times


def _break_shop(world_dir) -> tuple[str, str]:
    """A text price among REAL ones (the columnar driver refuses the column) and an order whose
    order time is not a timestamp; returns their keys."""
    with sqlite3.connect(world_dir / "shop.sqlite") as con:
        item = con.execute("select order_item_id from order_items limit 1 offset 5").fetchone()[0]
        con.execute("update order_items set unit_price = 'n/a' where order_item_id = ?", [item])
        order = con.execute("select order_id from orders limit 1 offset 7").fetchone()[0]
        con.execute("update orders set ordered_at = 'yesterday' where order_id = ?", [order])
    return item, order


def test_bad_values_go_to_quarantine_and_every_other_row_loads(settings, world_dir):
    item, order = _break_shop(world_dir)
    assert read(world_dir, "order_items", columnar=True)[0].num_rows > 0
    lenient = dataclasses.replace(settings, quarantine_threshold=1.0)
    summary = load_source("sales", day_window(UNTIL), settings=lenient)
    for name, stats in summary.entities.items():
        assert stats.rows_read == stats.rows_loaded + stats.rows_quarantined, name
    reasons = {(r[1], rule_of(r[3])) for r in quarantine_rows(lenient)}
    assert ("order_items", "field 'unit_price' has value 'n/a', not a valid decimal") in reasons
    assert ("orders", "field 'ordered_at' has value 'yesterday', not a valid timestamp") in reasons
    raw = raw_snapshot(lenient)
    with sqlite3.connect(world_dir / "shop.sqlite") as con:
        for name in ("order_items", "orders"):
            served = con.execute(f"select count(*) from {name}").fetchone()[0]
            assert len(raw[name]) == served - 1, name
    assert item not in {r[0] for r in raw["order_items"]}
    assert order not in {r[0] for r in raw["orders"]}


def test_a_column_the_columnar_driver_refuses_is_read_row_by_row(tmp_path):
    # ADBC types a column by its first rows and refuses a later value of another type
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("create table t (a numeric)")
        con.executemany("insert into t values (?)", [(i,) for i in range(3000)] + [("oops",)])
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        table = sa.Table("t", sa.MetaData(), autoload_with=conn)
        assert sales._read_sqlite_arrow(conn, entity("orders"), sa.select(table)) is None
        ok = sa.select(table).where(table.c.a < 10)
        assert sales._read_sqlite_arrow(conn, entity("orders"), ok).num_rows == 10
