"""The Shopify dialect end to end: the demo world's shop served as a Shopify store
(ops_demo.vendors.shopify) and loaded through the adapter gives the raw rows the generic SQL
dialect gives for the same world, field by field; cursors, throttling, nested paging, test
orders and the mapping file's validation along the way."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from ops_demo.server import DemoServer
from ops_demo.vendors.shopify import legacy_id
from ops_warehouse.errors import SourceConfigError
from ops_warehouse.pipeline import reconciliation
from ops_warehouse.pipeline.contracts import entity as contract_entity
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources import shopify
from ops_warehouse.warehouse.queries import query
from tests.conftest import UNTIL, make_settings
from tests.helpers import day_window, raw_snapshot

MAPPING = Path(__file__).parents[2] / "config" / "mapping.demo.yml"
SHOP_TOKEN = "sh-token"
# the demo store's bucket, so large that no test waits unless it means to
UNLIMITED = {"maximum_available": 10**9, "restore_rate": 10**9}
CENT = Decimal("0.01")


@pytest.fixture
def shop_server(world_dir):
    with DemoServer(
        world_dir,
        marketing_token="m-token",
        support_token="s-token",
        shop_token=SHOP_TOKEN,
        config={"shopify": UNLIMITED},
    ) as srv:
        yield srv


def shop_settings(home: Path, world_dir: Path, url: str, **overrides):
    values = dict(
        sales_dialect="shopify", shop_api_url=url, shop_api_token=SHOP_TOKEN, mapping_file=MAPPING
    )
    return make_settings(home, world_dir, url, **{**values, **overrides})


def sql_settings(home: Path, world_dir: Path, url: str):
    return make_settings(home, world_dir, url, sales_dialect="sql", mapping_file=None)


def shopify_requests(server) -> int:
    return sum(n for key, n in server.stats()["requests"].items() if key.startswith("shopify"))


# --- what the Shopify dialect gives for the generic rows, by design -----------------------


def expected_from_generic(generic: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """The generic dialect's raw rows as the Shopify dialect must give them. By design:

    - ids are Shopify's numbers (the demo store's legacy ids), not the shop database's texts;
    - a product row is a variant, named "<product title> - <variant title>": the demo store's
      products are the world's products of one noun, titled by it, each a variant titled by
      its adjective ("Pro Desk Organizer" -> "Desk Organizer - Pro");
    - money is the shop's (USD): each amount of an order in EUR or CNY is converted at the rate
      of the order's day (the latest at or before it) and rounded to the cent, the subtotal is
      the sum of the converted unit prices times quantities (the contract's identity holds in
      shop money), a refund is converted at its order's rate; the currency is USD;
    - an order's updated_at is its last change or its last refund's, whichever is later (a
      refund changes its Shopify order); a line item has no time of its own: its order's.
    Every other field (e-mail, names, country, segment, times, statuses, quantities, SKUs,
    categories, prices, costs, reasons, fx rates) is the same."""
    rates: dict[str, list[tuple[str, Decimal]]] = {}
    for day, currency, rate in generic["fx_rates"]:
        rates.setdefault(currency, []).append((day, Decimal(repr(rate))))

    def rate(currency: str, ordered_at: str) -> Decimal:
        if currency == "USD":
            return Decimal(1)
        day = ordered_at[:10]
        known = sorted(rates[currency])
        before = [r for d, r in known if d <= day]
        return before[-1] if before else known[0][1]

    def usd(value: str, factor: Decimal) -> str:
        return f"{(Decimal(value) * factor).quantize(CENT, ROUND_HALF_UP):.2f}"

    orders = {r[0]: r for r in generic["orders"]}
    factor = {oid: rate(r[4], r[3]) for oid, r in orders.items()}
    refunds_by_order: dict[str, list[tuple]] = {}
    for r in generic["refunds"]:
        refunds_by_order.setdefault(r[1], []).append(r)
    updated = {
        oid: max([r[10], *(x[5] for x in refunds_by_order.get(oid, []))])
        for oid, r in orders.items()
    }
    subtotal: dict[str, Decimal] = {}
    for r in generic["order_items"]:
        line = r[3] * Decimal(usd(r[4], factor[r[1]]))
        subtotal[r[1]] = subtotal.get(r[1], Decimal(0)) + line

    def product_name(name: str) -> str:
        adjective, noun = name.split(" ", 1)
        return f"{noun} - {adjective}"

    return {
        "customers": sorted((legacy_id("Customer", r[0]), *r[1:]) for r in generic["customers"]),
        "products": sorted(
            (legacy_id("ProductVariant", r[0]), r[1], product_name(r[2]), *r[3:])
            for r in generic["products"]
        ),
        "orders": sorted(
            (
                legacy_id("Order", oid),
                legacy_id("Customer", r[1]),
                r[2],
                r[3],
                "USD",
                f"{subtotal.get(oid, Decimal(0)):.2f}",
                *(usd(v, factor[oid]) for v in r[6:10]),
                updated[oid],
            )
            for oid, r in orders.items()
        ),
        "order_items": sorted(
            (
                legacy_id("LineItem", r[0]),
                legacy_id("Order", r[1]),
                legacy_id("ProductVariant", r[2]),
                r[3],
                usd(r[4], factor[r[1]]),
                updated[r[1]],
            )
            for r in generic["order_items"]
        ),
        "refunds": sorted(
            (
                legacy_id("Refund", r[0]),
                legacy_id("Order", r[1]),
                r[2],
                usd(r[3], factor[r[1]]),
                r[4],
                r[5],
            )
            for r in generic["refunds"]
        ),
        "fx_rates": generic["fx_rates"],
    }


def test_the_shopify_dialect_loads_what_the_sql_dialect_loads(
    tmp_path, world_dir, shop_server, server
):
    generic_settings = sql_settings(tmp_path / "sql", world_dir, server.url)
    load_source("sales", day_window(UNTIL), settings=generic_settings)
    generic = raw_snapshot(generic_settings)
    assert all(generic[name] for name in ("orders", "order_items", "refunds", "customers"))
    assert {r[4] for r in generic["orders"]} == {"USD", "EUR", "CNY"}, "no foreign-currency order"

    settings = shop_settings(tmp_path / "shop", world_dir, shop_server.url)
    # three daily runs: what changed at or after a run's interval end is read by the next one
    first = day_window(UNTIL - timedelta(days=2))
    load_source("sales", first, settings=settings)
    early = raw_snapshot(settings)
    assert early["orders"], "the first run loaded nothing"
    assert max(r[10] for r in early["orders"]) < first.end.isoformat()
    for day in (UNTIL - timedelta(days=1), UNTIL):
        summary = load_source("sales", day_window(day), settings=settings)
    shop = raw_snapshot(settings)
    expected = expected_from_generic(generic)
    for name, rows in expected.items():
        assert len(shop[name]) == len(rows), name
        assert shop[name] == rows, f"{name}: the Shopify dialect's raw rows differ"
    # what a Shopify store cannot count is not reconciled; raw is still counted
    checks = reconciliation.reconcile(settings, "sales", day_window(UNTIL), summary)
    assert {c.entity for c in checks} == set(expected)
    assert all(c.source_rows is None and c.raw_rows for c in checks)

    # presentment money kept beside the shop money: the order's own currency and amounts
    presentment = query(
        settings,
        "select order_id, _presentment_currency, _presentment_subtotal, _presentment_discount,"
        " _presentment_shipping, _presentment_tax, _presentment_total, _taxes_included"
        " from raw_sales.orders",
    )
    by_id = {legacy_id("Order", r[0]): r for r in generic["orders"]}
    assert len(presentment) == len(by_id)
    for order_id, currency, *amounts, taxes_included in presentment:
        source = by_id[order_id]
        assert (currency, [f"{a:.2f}" for a in amounts]) == (source[4], list(source[5:10]))
        assert taxes_included is False
    items = dict(
        query(settings, "select order_item_id, _presentment_unit_price from raw_sales.order_items")
    )
    assert {k: f"{v:.2f}" for k, v in items.items()} == {
        legacy_id("LineItem", r[0]): r[4] for r in generic["order_items"]
    }
    refunds = dict(query(settings, "select refund_id, _presentment_amount from raw_sales.refunds"))
    assert {k: f"{v:.2f}" for k, v in refunds.items()} == {
        legacy_id("Refund", r[0]): r[3] for r in generic["refunds"]
    }


def test_an_advanced_world_is_picked_up_incrementally(tmp_path, world_dir, shop_server, server):
    from ops_demo import world

    settings = shop_settings(tmp_path / "shop", world_dir, shop_server.url)
    load_source("sales", day_window(UNTIL), settings=settings)
    before = raw_snapshot(settings)
    world.advance(world_dir, days=3)
    requests = shopify_requests(shop_server)
    load_source("sales", day_window(UNTIL + timedelta(days=3)), settings=settings)
    generic_settings = sql_settings(tmp_path / "sql", world_dir, server.url)
    load_source("sales", day_window(UNTIL + timedelta(days=3)), settings=generic_settings)
    expected = expected_from_generic(raw_snapshot(generic_settings))
    after = raw_snapshot(settings)
    for name, rows in expected.items():
        assert after[name] == rows, name
    assert len(after["orders"]) > len(before["orders"])
    assert shopify_requests(shop_server) > requests


def test_the_cursor_is_the_newest_change_read_and_stays_before_the_interval_end(
    tmp_path, world_dir, shop_server
):
    settings = shop_settings(tmp_path / "shop", world_dir, shop_server.url)
    window = day_window(UNTIL - timedelta(days=5))
    with ExitStack() as stack:
        readers = shopify.readers(settings, stack)

        def read(name: str, state: dict, window) -> list[datetime]:
            batches = readers[name](contract_entity(name), state, window)
            return [t for b in batches for t in b.table["updated_at"].to_pylist()]

        for name in ("customers", "products", "orders", "order_items", "refunds"):
            state: dict = {}
            updated = read(name, state, window)
            assert updated, name
            cursor = datetime.fromisoformat(state["cursor"])
            assert cursor < window.end, name
            # the newest change read: a customer's, an order's (its items carry its time),
            # a product's (its variants' newest); a refund is never later than its order
            if name == "refunds":
                assert cursor >= max(updated)
            else:
                assert cursor == max(updated), name
        # the next run starts at the cursor and reads what changed at or after the end
        state = {}
        read("orders", state, window)
        later = read("orders", dict(state), day_window(UNTIL))
        assert min(later) >= datetime.fromisoformat(state["cursor"])
        assert max(later) >= window.end


def test_throttling_is_honoured_and_changes_nothing(tmp_path, world_dir, shop_server, monkeypatch):
    reference = shop_settings(tmp_path / "ref", world_dir, shop_server.url)
    load_source("sales", day_window(UNTIL), settings=reference, entities=["customers", "orders"])
    # a small bucket refilling fast: queries must wait for it (and THROTTLED arrives as a 429)
    shop_server.configure(
        shopify={"maximum_available": 1000, "restore_rate": 20_000, "throttled_status": 429}
    )
    waits: list[float] = []
    real_sleep = shopify._sleep

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(shopify, "_sleep", sleep)
    settings = shop_settings(tmp_path / "slow", world_dir, shop_server.url)
    load_source("sales", day_window(UNTIL), settings=settings, entities=["customers", "orders"])
    assert waits, "no query waited for the bucket"
    assert all(0 < w <= 1000 / 20_000 + 1e-9 for w in waits), waits
    assert raw_snapshot(settings) == raw_snapshot(reference)


def test_nested_connections_are_read_to_their_last_page(
    tmp_path, world_dir, shop_server, monkeypatch
):
    entities = ["products", "orders", "order_items", "refunds"]
    reference = shop_settings(tmp_path / "ref", world_dir, shop_server.url)
    load_source("sales", day_window(UNTIL), settings=reference, entities=entities)
    expected = raw_snapshot(reference)
    # one line item, refund, refund line item and variant a page: every order and product
    # with more is read on by follow-up queries (two rows each)
    for name in ("LINE_ITEMS_FIRST", "REFUNDS_FIRST", "REFUND_LINE_ITEMS_FIRST", "VARIANTS_FIRST"):
        monkeypatch.setattr(shopify, name, 1)
    monkeypatch.setattr(shopify, "FOLLOW_UP_FIRST", 2)
    settings = shop_settings(tmp_path / "small", world_dir, shop_server.url)
    before = shopify_requests(shop_server)
    load_source("sales", day_window(UNTIL), settings=settings, entities=entities)
    assert raw_snapshot(settings) == expected
    items = [sum(1 for i in expected["order_items"] if i[1] == o[0]) for o in expected["orders"]]
    assert max(items) >= 4, "no order needs two follow-up pages"
    # each order with more than one item was followed up, by orders and by order_items
    follow_ups = sum(2 * ((n - 1 + 1) // 2) for n in items if n > 1)
    assert shopify_requests(shop_server) - before >= follow_ups


def test_test_orders_are_not_loaded(tmp_path, world_dir, shop_server, caplog):
    settings = shop_settings(tmp_path / "shop", world_dir, shop_server.url)
    refunded = sorted(
        r[1] for r in raw_snapshot(sql_reference(tmp_path, world_dir, shop_server))["refunds"]
    )
    test_orders = [refunded[0], "O00000003"]
    shop_server.configure(shopify={**UNLIMITED, "test_orders": test_orders})
    with caplog.at_level(logging.INFO, logger=shopify.__name__):
        summary = load_source("sales", day_window(UNTIL), settings=settings)
    raw = raw_snapshot(settings)
    hidden = {legacy_id("Order", o) for o in test_orders}
    assert not hidden & {r[0] for r in raw["orders"]}
    assert not hidden & {r[1] for r in raw["order_items"]}
    assert not hidden & {r[1] for r in raw["refunds"]}
    assert raw["orders"], "every order was left out"
    assert summary.entities["orders"].rows_quarantined == 0
    assert "2 test orders" in caplog.text


def sql_reference(tmp_path, world_dir, server) -> object:
    settings = sql_settings(tmp_path / "sql", world_dir, server.url)
    load_source("sales", day_window(UNTIL), settings=settings, entities=["refunds"])
    return settings


def test_an_order_no_status_rule_matches_goes_to_quarantine_naming_its_states(
    tmp_path, world_dir, shop_server
):
    text = MAPPING.read_text().replace(
        "    - {when: {financial: [PAID, PARTIALLY_REFUNDED]}, status: paid}\n", ""
    )
    assert text != MAPPING.read_text()
    mapping_file = tmp_path / "mapping.yml"
    mapping_file.write_text(text)
    settings = shop_settings(
        tmp_path / "shop",
        world_dir,
        shop_server.url,
        mapping_file=mapping_file,
        quarantine_threshold=1.0,
    )
    summary = load_source("sales", day_window(UNTIL), settings=settings, entities=["orders"])
    reasons = [
        r[0]
        for r in query(settings, "select reason from raw_sales._quarantine where entity = 'orders'")
    ]
    pending = [r for r in reasons if "no rule of shopify.order_status" in r]
    assert pending and len(pending) == summary.entities["orders"].rows_quarantined
    # the paid, unfulfilled orders: no rule is left for them
    assert all("displayFulfillmentStatus UNFULFILLED, not cancelled" in r for r in pending)


BAD_MAPPINGS = [
    (
        "    - {when: {cancelled: true}, status: cancelled}",
        "    - {when: {cancelled: true}, status: void}",
        "shopify.order_status[0].status",
    ),
    ("financial: [REFUNDED]", "financial: [REFUNDD]", "shopify.order_status[1].when.financial[0]"),
    ("  fx_rates: database", "  fx_rates: spreadsheet", "shopify.fx_rates"),
    (
        "    segment_default: consumer",
        "    segment_default: retail",
        "shopify.customers.segment_default",
    ),
    (
        "    category_default: Uncategorized",
        "    category_defaults: x",
        "shopify.products.category_defaults",
    ),
]


@pytest.mark.parametrize(("old", "new", "key"), BAD_MAPPINGS)
def test_a_bad_mapping_file_stops_the_load_before_any_request_naming_the_key(
    tmp_path, world_dir, shop_server, old, new, key
):
    text = MAPPING.read_text()
    assert old in text
    mapping_file = tmp_path / "mapping.yml"
    mapping_file.write_text(text.replace(old, new))
    settings = shop_settings(
        tmp_path / "shop", world_dir, shop_server.url, mapping_file=mapping_file
    )
    with pytest.raises(SourceConfigError) as err:
        load_source("sales", day_window(UNTIL), settings=settings)
    assert key in str(err.value)
    assert shopify_requests(shop_server) == 0


def test_without_a_mapping_file_the_shopify_dialect_names_what_it_needs(
    tmp_path, world_dir, shop_server
):
    settings = shop_settings(tmp_path / "shop", world_dir, shop_server.url, mapping_file=None)
    with pytest.raises(SourceConfigError) as err:
        load_source("sales", day_window(UNTIL), settings=settings)
    assert "shopify.order_status" in str(err.value) and "OPS_MAPPING_FILE" in str(err.value)
    assert shopify_requests(shop_server) == 0


def test_fx_rates_from_a_sheet_in_the_landing_folder(tmp_path, world_dir, shop_server):
    generic = raw_snapshot(sql_reference_fx(tmp_path, world_dir, shop_server))["fx_rates"]
    landing = world_dir / "landing"
    half = len(generic) // 2
    lines = ["rate_date,currency,rate_to_usd"] + [f"{d},{c},{r}" for d, c, r in generic[:half]]
    (landing / "fx_rates_2026-10-01.csv").write_text("\n".join(lines) + "\n")
    # a newer sheet with the rest, correcting one rate of the older one
    corrected = generic[0]
    lines = ["rate_date,currency,rate_to_usd", f"{corrected[0]},{corrected[1]},1.5"]
    lines += [f"{d},{c},{r}" for d, c, r in generic[half:]]
    (landing / "fx_rates_2026-11-01.csv").write_text("\n".join(lines) + "\n")
    mapping_file = tmp_path / "mapping.yml"
    mapping_file.write_text(MAPPING.read_text().replace("fx_rates: database", "fx_rates: sheet"))
    settings = shop_settings(
        tmp_path / "shop", world_dir, shop_server.url, mapping_file=mapping_file
    )
    load_source("sales", day_window(UNTIL), settings=settings, entities=["fx_rates"])
    expected = sorted([(corrected[0], corrected[1], 1.5), *generic[1:]])
    assert raw_snapshot(settings)["fx_rates"] == expected


def sql_reference_fx(tmp_path, world_dir, server):
    settings = sql_settings(tmp_path / "sql", world_dir, server.url)
    load_source("sales", day_window(UNTIL), settings=settings, entities=["fx_rates"])
    return settings


def test_a_store_asking_for_smaller_pages_is_read_whole(
    tmp_path, world_dir, shop_server, monkeypatch
):
    reference = shop_settings(tmp_path / "ref", world_dir, shop_server.url)
    load_source("sales", day_window(UNTIL), settings=reference, entities=["products"])
    # a store whose single-query limit is low: first is lowered until a page fits, for the
    # products and for the follow-ups reading their other variants (100 a page cost 402)
    monkeypatch.setattr(shopify, "VARIANTS_FIRST", 2)
    shop_server.configure(shopify={**UNLIMITED, "max_query_cost": 150})
    settings = shop_settings(tmp_path / "shop", world_dir, shop_server.url)
    load_source("sales", day_window(UNTIL), settings=settings, entities=["products"])
    assert raw_snapshot(settings)["products"] == raw_snapshot(reference)["products"]


def test_a_wrong_api_version_stops_the_load_at_once_naming_the_setting(
    tmp_path, world_dir, shop_server
):
    settings = shop_settings(
        tmp_path / "shop", world_dir, shop_server.url, shopify_api_version="2023-10"
    )
    with pytest.raises(SourceConfigError) as err:
        load_source("sales", day_window(UNTIL), settings=settings, entities=["customers"])
    assert "OPS_SHOPIFY_API_VERSION" in str(err.value) and "404" in str(err.value)
    assert f"{shop_server.url}/admin/api/2023-10/graphql.json" in str(err.value)
    assert shopify_requests(shop_server) == 1


def test_an_api_version_before_2025_04_reads_the_customer_email_field(
    tmp_path, world_dir, shop_server, server
):
    generic_settings = sql_settings(tmp_path / "sql", world_dir, server.url)
    load_source("sales", day_window(UNTIL), settings=generic_settings, entities=["customers"])
    for version in ("2025-01", "2025-04"):
        settings = shop_settings(
            tmp_path / version, world_dir, shop_server.url, shopify_api_version=version
        )
        load_source("sales", day_window(UNTIL), settings=settings, entities=["customers"])
        assert [r[1] for r in raw_snapshot(settings)["customers"]] == [
            r[1] for r in expected_from_generic_customers(generic_settings)
        ]


def expected_from_generic_customers(settings) -> list[tuple]:
    return sorted(
        (legacy_id("Customer", r[0]), *r[1:]) for r in raw_snapshot(settings)["customers"]
    )
