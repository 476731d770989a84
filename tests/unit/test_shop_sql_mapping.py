"""A team's own shop database whose tables and columns have other names, read through the
mapping file's ``shop_sql`` section: the same raw rows as the demo world's shop, and a wrong
name stops the load before anything is read, naming the key, the table and the column."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ops_warehouse.errors import SourceConfigError
from ops_warehouse.pipeline import reconciliation
from ops_warehouse.pipeline.contracts import entities_of
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.shop_schema import metadata
from ops_warehouse.warehouse.queries import query
from tests.conftest import UNTIL, make_settings
from tests.helpers import day_window, raw_snapshot

# the team's names: table, and contract field -> column (fields not listed keep their name)
RENAMED = {
    "customers": (
        "crm_customer",
        {"customer_id": "id", "email": "email_address", "updated_at": "modified"},
    ),
    "products": (
        "catalog_item",
        {"product_id": "item_no", "product_name": "title", "list_price": "price"},
    ),
    "orders": (
        "sales_order",
        {
            "order_id": "id",
            "order_status": "state",
            "ordered_at": "placed",
            "updated_at": "modified",
        },
    ),
    "order_items": (
        "sales_order_line",
        {"order_item_id": "line_id", "order_id": "sales_order_id", "product_id": "item_no"},
    ),
    "refunds": ("sales_refund", {"refund_id": "id", "reason": "why"}),
    "fx_rates": ("finance_fx", {"rate_date": "day", "rate_to_usd": "usd_per_unit"}),
}


def build_renamed_shop(source: Path, target: Path) -> None:
    """The world's shop copied under the team's names, with a column the contract does not
    know in every table (a mapped entity reads only the contract's fields)."""
    renamed = sa.MetaData()
    tables = {}
    for name, (table, columns) in RENAMED.items():
        original = metadata.tables[name]
        tables[name] = sa.Table(
            table,
            renamed,
            *[sa.Column(columns.get(c.name, c.name), c.type) for c in original.columns],
            sa.Column("internal_note", sa.String()),
        )
    source_engine = sa.create_engine(f"sqlite:///{source}")
    target_engine = sa.create_engine(f"sqlite:///{target}")
    renamed.create_all(target_engine)
    with source_engine.connect() as read, target_engine.begin() as write:
        for name, (_, columns) in RENAMED.items():
            rows = [dict(r._mapping) for r in read.execute(sa.select(metadata.tables[name]))]
            moved = [
                {columns.get(k, k): v for k, v in r.items()} | {"internal_note": "x"} for r in rows
            ]
            write.execute(tables[name].insert(), moved)


def mapping_text(renamed: dict = RENAMED) -> str:
    return yaml.safe_dump(
        {
            "shop_sql": {
                name: {"table": table, "columns": columns}
                for name, (table, columns) in renamed.items()
            }
        }
    )


@pytest.fixture
def renamed_shop(tmp_path, world_dir) -> tuple[Path, Path]:
    shop = tmp_path / "team_shop.sqlite"
    build_renamed_shop(world_dir / "shop.sqlite", shop)
    mapping_file = tmp_path / "mapping.yml"
    mapping_file.write_text(mapping_text())
    return shop, mapping_file


def team_settings(tmp_path, world_dir, server, shop: Path, mapping_file: Path | None):
    return make_settings(
        tmp_path / "team",
        world_dir,
        server.url,
        sales_dialect="sql",
        shop_db_url=f"sqlite:///{shop}",
        mapping_file=mapping_file,
    )


def test_a_renamed_shop_loads_the_same_raw_rows(tmp_path, world_dir, server, renamed_shop):
    reference = make_settings(
        tmp_path / "ref", world_dir, server.url, sales_dialect="sql", mapping_file=None
    )
    load_source("sales", day_window(UNTIL), settings=reference)
    shop, mapping_file = renamed_shop
    settings = team_settings(tmp_path, world_dir, server, shop, mapping_file)
    window = day_window(UNTIL)
    summary = load_source("sales", window, settings=settings)
    expected, raw = raw_snapshot(reference), raw_snapshot(settings)
    for e in entities_of("sales"):
        assert raw[e.name] and raw[e.name] == expected[e.name], e.name
    # only the contract's fields (and the loader's own) are in raw: no team column came along
    columns = query(
        settings,
        "select distinct column_name from information_schema.columns where table_schema = 'raw_sales'",
    )
    assert "internal_note" not in {c[0] for c in columns}
    # the shop's rows are counted in the team's tables
    checks = reconciliation.reconcile(settings, "sales", window, summary)
    assert {c.entity: c.source_rows for c in checks} == {e: len(raw[e]) for e in RENAMED}
    assert not any(c.gap for c in checks)


def test_only_the_entities_the_mapping_names_are_renamed(tmp_path, world_dir, server):
    # the world's own shop, with just the refunds table renamed
    shop = tmp_path / "shop.sqlite"
    shop.write_bytes((world_dir / "shop.sqlite").read_bytes())
    with sa.create_engine(f"sqlite:///{shop}").begin() as con:
        con.execute(sa.text("alter table refunds rename to returns_money"))
    mapping_file = tmp_path / "mapping.yml"
    mapping_file.write_text(yaml.safe_dump({"shop_sql": {"refunds": {"table": "returns_money"}}}))
    settings = team_settings(tmp_path, world_dir, server, shop, mapping_file)
    load_source("sales", day_window(UNTIL), settings=settings, entities=["refunds", "orders"])
    raw = raw_snapshot(settings)
    with sa.create_engine(f"sqlite:///{shop}").connect() as con:
        assert (
            len(raw["refunds"])
            == con.execute(sa.text("select count(*) from returns_money")).scalar()
        )
        assert len(raw["orders"]) == con.execute(sa.text("select count(*) from orders")).scalar()


def broken(
    entity: str, field: str | None = None, column: str | None = None, table: str | None = None
):
    renamed = {name: (t, dict(c)) for name, (t, c) in RENAMED.items()}
    t, columns = renamed[entity]
    if table is not None:
        t = table
    if field is not None:
        if column is None:
            columns.pop(field)
        else:
            columns[field] = column
    renamed[entity] = (t, columns)
    return mapping_text(renamed)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            broken("orders", "order_status", "status"),
            ["shop_sql.orders.columns.order_status", "'status'", "'sales_order'", "state"],
        ),
        (
            broken("customers", "email"),  # not mapped, and no column of its own name
            ["shop_sql.customers.columns", "'email'", "'crm_customer'"],
        ),
        (broken("refunds", table="refund"), ["shop_sql.refunds.table", "'refund'"]),
    ],
)
def test_a_mapping_the_database_does_not_match_stops_before_any_read(
    tmp_path, world_dir, server, renamed_shop, text, named
):
    shop, mapping_file = renamed_shop
    mapping_file.write_text(text)
    settings = team_settings(tmp_path, world_dir, server, shop, mapping_file)
    with pytest.raises(SourceConfigError) as err:
        load_source("sales", day_window(UNTIL), settings=settings)
    for part in named:
        assert part in str(err.value)
    assert not (tmp_path / "team" / "warehouse" / "working.duckdb").exists() or not raw_snapshot(
        settings
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"orders": {"columns": {"order_state": "state"}}}, "shop_sql.orders.columns.order_state"),
        ({"orders": {"tabel": "x"}}, "shop_sql.orders.tabel"),
        ({"invoices": {"table": "x"}}, "shop_sql.invoices"),
        ({"orders": {"columns": ["id"]}}, "shop_sql.orders.columns"),
    ],
)
def test_a_malformed_shop_sql_section_names_the_key(
    tmp_path, world_dir, server, renamed_shop, section, key
):
    shop, mapping_file = renamed_shop
    mapping_file.write_text(yaml.safe_dump({"shop_sql": section}))
    settings = team_settings(tmp_path, world_dir, server, shop, mapping_file)
    with pytest.raises(SourceConfigError) as err:
        load_source("sales", day_window(UNTIL), settings=settings)
    assert key in str(err.value) and str(mapping_file) in str(err.value)
