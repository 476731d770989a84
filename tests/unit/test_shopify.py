"""The Shopify adapter against scripted answers: paging, throttling, each error body mapped to
its error class (naming the URL, never retrying what will not pass), and the translation of
Shopify's nodes into the contract's rows. The payloads are written here, in Shopify's shapes."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ops_warehouse.errors import (
    SourceConfigError,
    SourceDataError,
    SourceUnavailableError,
    is_permanent,
)
from ops_warehouse.pipeline.contracts import entity
from ops_warehouse.pipeline.sources import mapping, shopify
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import Settings

MAPPING = Path(__file__).parents[2] / "config" / "mapping.demo.yml"
TOKEN = "shpat_test_secret_0123"
WINDOW = Window(datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))


# --- a scripted store ---------------------------------------------------------------------


class Store:
    """Answers POSTs from a script of (status, body, headers); records what was asked."""

    def __init__(self, answers: list[tuple[int, Any, dict[str, str]]]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.tokens: list[str | None] = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                store.requests.append(json.loads(body))
                store.tokens.append(self.headers.get("X-Shopify-Access-Token"))
                status, payload, headers = store.answers.pop(0) if store.answers else (500, "", {})
                data = payload if isinstance(payload, str) else json.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data.encode())))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/admin/api/2026-10/graphql.json"


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store([])
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(shopify, "_sleep", recorded.append)
    return recorded


def settings_for(store: Store, **overrides: Any) -> Settings:
    values = dict(
        shop_api_url=store.url,
        shop_api_token=TOKEN,
        shopify_api_version="2026-10",
        sales_dialect="shopify",
        mapping_file=MAPPING,
        http_max_attempts=4,
        http_backoff_max_s=0.01,
        http_timeout_s=2.0,
        page_size=250,
    )
    return dataclasses.replace(Settings.from_env(), **{**values, **overrides})


def cost(requested: int = 10, available: int = 990, rate: float = 50.0) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": requested,
            "throttleStatus": {
                "maximumAvailable": 1000.0,
                "currentlyAvailable": available,
                "restoreRate": rate,
            },
        }
    }


def page(root: str, nodes: list[dict], cursor: str | None, more: bool, **extensions: Any):
    body = {
        "data": {root: {"pageInfo": {"hasNextPage": more, "endCursor": cursor}, "nodes": nodes}},
        "extensions": cost(**extensions),
    }
    return (200, body, {})


def customer(n: int, updated: str, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Customer/{n}",
        "createdAt": "2026-01-05T10:00:00Z",
        "updatedAt": updated,
        "firstName": "Ada",
        "lastName": f"Nr{n}",
        "displayName": f"Ada Nr{n}",
        "tags": tags or [],
        "defaultEmailAddress": {"emailAddress": f"ada{n}@example.org"},
        "defaultAddress": {"countryCodeV2": "DE"},
    }


def read_customers(settings: Settings, state: dict | None = None, window: Window = WINDOW):
    client = shopify.ShopifyClient(settings)
    rules = shopify.Rules.of(mapping.load(settings.mapping_file).section("shopify"))
    state = {} if state is None else state
    batches = list(shopify.read_customers(client, rules, entity("customers"), state, window))
    return [r for b in batches for r in b.table.to_pylist()], state, client


# --- paging ---------------------------------------------------------------------------------


def test_pages_are_followed_to_the_last_and_a_short_page_is_not_the_end(store, waits):
    store.answers = [
        page("customers", [customer(1, "2026-11-22T03:00:00Z")], "c1", True),
        page("customers", [], "c2", True),  # an empty page that says there is more
        page("customers", [customer(2, "2026-11-22T01:00:00Z")], "c3", True),
        page("customers", [customer(3, "2026-11-22T02:00:00Z")], "c4", False),
    ]
    rows, state, _ = read_customers(settings_for(store))
    assert [r["customer_id"] for r in rows] == ["1", "2", "3"]
    assert [r["variables"].get("after") for r in store.requests] == [None, "c1", "c2", "c3"]
    # pages come unsorted: the cursor is the newest updatedAt of all, not the last row's
    assert state["cursor"] == "2026-11-22T03:00:00+00:00"


def test_the_search_reads_from_the_cursor_to_the_interval_end(store, waits):
    store.answers = [
        page(
            "customers",
            [customer(1, "2026-11-22T05:00:00Z"), customer(2, "2026-11-23T00:00:00Z")],
            None,
            False,
        )
    ]
    rows, state, _ = read_customers(settings_for(store), {"cursor": "2026-11-21T08:30:00+00:00"})
    variables = store.requests[0]["variables"]
    assert variables["query"] == (
        "updated_at:>='2026-11-21T08:30:00Z' AND updated_at:<'2026-11-23T00:00:00Z'"
    )
    assert "sortKey: UPDATED_AT" in store.requests[0]["query"]
    # a row at the interval end (a store that ignored the bound) is left for the next run
    assert [r["customer_id"] for r in rows] == ["1"]
    assert state["cursor"] == "2026-11-22T05:00:00+00:00"


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        ({"hasNextPage": True, "endCursor": None}, "breaks the paging protocol"),
        ({"hasNextPage": "yes", "endCursor": "x"}, "breaks the paging protocol"),
        ({"hasNextPage": True, "endCursor": "same"}, "was served before"),
    ],
)
def test_a_page_that_breaks_paging_stops_the_load_naming_the_url(store, waits, info, problem):
    first = page("customers", [customer(1, "2026-11-22T01:00:00Z")], "same", True)
    second = (200, {"data": {"customers": {"pageInfo": info, "nodes": []}}}, {})
    store.answers = [first, second]
    with pytest.raises(SourceDataError) as err:
        read_customers(settings_for(store))
    assert problem in str(err.value) and store.graphql_url in str(err.value)
    assert len(store.requests) == 2


def test_edges_are_read_like_nodes(store, waits):
    body = {
        "data": {
            "customers": {
                "pageInfo": {"hasNextPage": False, "endCursor": "e1"},
                "edges": [{"cursor": "e1", "node": customer(7, "2026-11-22T01:00:00Z")}],
            }
        }
    }
    store.answers = [(200, body, {})]
    rows, _, _ = read_customers(settings_for(store))
    assert rows[0]["customer_id"] == "7" and rows[0]["email"] == "ada7@example.org"


# --- throttling -----------------------------------------------------------------------------


THROTTLED = {
    "errors": [
        {
            "message": "Throttled",
            "extensions": {"code": "THROTTLED", "documentation": "https://example.org/limits"},
        }
    ],
    "extensions": {
        "cost": {
            "requestedQueryCost": 600,
            "actualQueryCost": None,
            "throttleStatus": {
                "maximumAvailable": 1000.0,
                "currentlyAvailable": 450,
                "restoreRate": 100.0,
            },
        }
    },
}


@pytest.mark.parametrize("status", [200, 429])
def test_throttled_waits_for_the_bucket_and_asks_again(store, waits, status):
    store.answers = [
        (status, THROTTLED, {}),
        page("customers", [customer(1, "2026-11-22T01:00:00Z")], None, False),
    ]
    rows, _, client = read_customers(settings_for(store))
    assert len(rows) == 1 and len(store.requests) == 2
    assert waits == [pytest.approx((600 - 450) / 100.0)]
    assert store.requests[0] == store.requests[1]


def test_a_short_bucket_makes_the_next_query_wait(store, waits):
    store.answers = [
        page(
            "customers",
            [customer(1, "2026-11-22T01:00:00Z")],
            "c1",
            True,
            requested=300,
            available=120,
            rate=50.0,
        ),
        page(
            "customers",
            [customer(2, "2026-11-22T01:00:00Z")],
            "c2",
            True,
            requested=300,
            available=900,
        ),
        page("customers", [customer(3, "2026-11-22T01:00:00Z")], None, False),
    ]
    rows, _, _ = read_customers(settings_for(store))
    assert len(rows) == 3
    # only before the second query: the bucket was (300 - 120) short, restoring 50 a second
    assert waits == [pytest.approx(3.6)]


def test_a_429_without_a_cost_backs_off_as_told(store, waits):
    store.answers = [
        (429, {"errors": "Exceeded 2 calls per second for api client."}, {"Retry-After": "0.005"}),
        page("customers", [], None, False),
    ]
    read_customers(settings_for(store))
    assert waits == [0.005] and len(store.requests) == 2


def test_throttling_that_never_ends_gives_up_after_the_attempts(store, waits):
    store.answers = [(200, THROTTLED, {})] * 4
    with pytest.raises(SourceUnavailableError) as err:
        read_customers(settings_for(store, http_max_attempts=4))
    assert "THROTTLED" in str(err.value) and store.graphql_url in str(err.value)
    assert len(store.requests) == 4 and not is_permanent(err.value)


def test_a_query_too_costly_is_asked_again_with_a_smaller_first(store, waits):
    too_costly = {
        "errors": [
            {
                "message": "Query cost is 2502, which exceeds the single query max cost limit (1000).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 2502, "maxCost": 1000},
            }
        ]
    }
    store.answers = [
        (200, too_costly, {}),
        page("customers", [customer(1, "2026-11-22T01:00:00Z")], "c1", True),
        page("customers", [customer(2, "2026-11-22T01:00:00Z")], None, False),
    ]
    rows, _, _ = read_customers(settings_for(store))
    assert len(rows) == 2
    firsts = [r["variables"]["first"] for r in store.requests]
    assert firsts[0] == 250 and firsts[1] == 250 * 1000 // 2502 and firsts[2] == firsts[1]


def test_a_query_too_costly_even_for_one_row_is_permanent_naming_the_query(store, waits):
    too_costly = {
        "errors": [
            {
                "message": "too costly",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 5000, "maxCost": 1000},
            }
        ]
    }
    store.answers = [(200, too_costly, {})] * 3
    with pytest.raises(SourceConfigError) as err:
        read_customers(settings_for(store, page_size=2))
    assert "customers query" in str(err.value) and "5000" in str(err.value)
    assert [r["variables"]["first"] for r in store.requests] == [2, 1]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "setting"),
    [
        (
            401,
            {
                "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
            },
            "OPS_SHOP_API_TOKEN",
        ),
        (402, {"errors": "Unavailable Shop"}, "OPS_SHOP_API_URL"),
        (
            403,
            {"errors": "[API] This action requires merchant approval for read_orders scope."},
            "OPS_SHOP_API_TOKEN",
        ),
        (404, {"errors": "Not Found"}, "OPS_SHOPIFY_API_VERSION"),
        (423, {"errors": "Locked"}, "OPS_SHOP_API_URL"),
        (
            400,
            {"errors": {"query": "Required parameter missing or invalid"}},
            "OPS_SHOPIFY_API_VERSION",
        ),
    ],
)
def test_a_refusal_stops_at_once_naming_the_setting_and_the_url(
    store, waits, status, body, setting
):
    store.answers = [(status, body, {})]
    with pytest.raises(SourceConfigError) as err:
        read_customers(settings_for(store))
    message = str(err.value)
    assert setting in message and store.graphql_url in message and f"HTTP {status}" in message
    assert len(store.requests) == 1 and not waits and is_permanent(err.value)
    assert TOKEN not in message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {
                "message": "Access denied for customers field. Required access: `read_customers` access scope.",
                "extensions": {"code": "ACCESS_DENIED"},
            },
            "OPS_SHOP_API_TOKEN",
        ),
        (
            {
                "message": "Field 'defaultEmailAddress' doesn't exist on type 'Customer'",
                "extensions": {
                    "code": "undefinedField",
                    "typeName": "Customer",
                    "fieldName": "defaultEmailAddress",
                },
            },
            "OPS_SHOPIFY_API_VERSION",
        ),
    ],
)
def test_a_graphql_error_that_will_come_back_is_permanent(store, waits, error, expected):
    store.answers = [(200, {"errors": [error]}, {})]
    with pytest.raises(SourceConfigError) as err:
        read_customers(settings_for(store))
    assert expected in str(err.value) and store.graphql_url in str(err.value)
    assert error["message"][:40] in str(err.value)
    assert len(store.requests) == 1 and is_permanent(err.value)


def test_server_errors_are_retried(store, waits):
    internal = {
        "errors": [{"message": "Internal error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]
    }
    store.answers = [
        (503, "<html>unavailable</html>", {}),
        (200, internal, {}),
        page("customers", [customer(1, "2026-11-22T01:00:00Z")], None, False),
    ]
    rows, _, _ = read_customers(settings_for(store))
    assert len(rows) == 1 and len(store.requests) == 3 and len(waits) == 2


def test_server_errors_on_every_attempt_leave_the_source_unavailable(store, waits):
    store.answers = [(502, "bad gateway", {})] * 4
    with pytest.raises(SourceUnavailableError) as err:
        read_customers(settings_for(store))
    assert "HTTP 502" in str(err.value) and store.graphql_url in str(err.value)
    assert len(store.requests) == 4


def test_an_answer_that_is_not_json_stops_naming_the_url(store, waits):
    store.answers = [(200, "<html>login</html>", {})]
    with pytest.raises(SourceDataError) as err:
        read_customers(settings_for(store))
    assert "not JSON" in str(err.value) and store.graphql_url in str(err.value)


def test_a_node_without_a_field_asked_for_stops_naming_the_field(store, waits):
    broken = customer(1, "2026-11-22T01:00:00Z")
    del broken["tags"]
    store.answers = [page("customers", [broken], None, False)]
    with pytest.raises(SourceDataError) as err:
        read_customers(settings_for(store))
    assert "'tags'" in str(err.value) and store.graphql_url in str(err.value)


def test_without_a_token_or_with_a_bad_version_nothing_is_asked(store):
    with pytest.raises(SourceConfigError, match="OPS_SHOP_API_TOKEN"):
        shopify.ShopifyClient(settings_for(store, shop_api_token=""))
    with pytest.raises(SourceConfigError, match="OPS_SHOPIFY_API_VERSION"):
        shopify.ShopifyClient(settings_for(store, shopify_api_version="2026-11"))
    assert store.requests == []


def test_the_token_goes_in_its_header(store, waits):
    store.answers = [page("customers", [], None, False)]
    read_customers(settings_for(store))
    assert store.tokens == [TOKEN]


# --- the API version decides where a customer's e-mail is --------------------------------


@pytest.mark.parametrize(
    ("version", "field"),
    [
        ("2024-10", "email"),
        ("2025-01", "email"),
        ("2025-04", "defaultEmailAddress"),
        ("2026-10", "defaultEmailAddress"),
        ("unstable", "defaultEmailAddress"),
    ],
)
def test_the_email_field_follows_the_api_version(store, waits, version, field):
    node = customer(1, "2026-11-22T01:00:00Z")
    node["email"] = "old-field@example.org"
    store.answers = [page("customers", [node], None, False)]
    rows, _, _ = read_customers(settings_for(store, shopify_api_version=version))
    query = store.requests[0]["query"]
    assert (
        field in query and ({"email", "defaultEmailAddress"} - {field}).pop() not in query.split()
    )
    assert rows[0]["email"] == ("old-field@example.org" if field == "email" else "ada1@example.org")


# --- translating nodes --------------------------------------------------------------------


def rules(**changes: Any) -> shopify.Rules:
    base = shopify.Rules.of(mapping.load(MAPPING).section("shopify"))
    return dataclasses.replace(base, **changes)


def bag(shop: str, shown: str, currency: str = "EUR") -> dict[str, Any]:
    return {
        "shopMoney": {"amount": shop, "currencyCode": "USD"},
        "presentmentMoney": {"amount": shown, "currencyCode": currency},
    }


def order_node(**changes: Any) -> dict[str, Any]:
    node = {
        "id": "gid://shopify/Order/4100",
        "processedAt": "2026-11-20T09:00:00Z",
        "updatedAt": "2026-11-21T10:00:00Z",
        "cancelledAt": None,
        "test": False,
        "taxesIncluded": True,
        "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "FULFILLED",
        "customer": {"id": "gid://shopify/Customer/77"},
        "totalDiscountsSet": bag("1.1", "1.0"),
        "totalShippingPriceSet": bag("0.0", "0.0"),
        "totalTaxSet": bag("3.30", "3.0"),
        "totalPriceSet": bag("19.8", "18.0"),
    }
    return {**node, **changes}


LINES = [
    {
        "id": "gid://shopify/LineItem/1",
        "quantity": 2,
        "variant": {"id": "gid://shopify/ProductVariant/9"},
        "originalUnitPriceSet": bag("5.50", "5.0"),
    },
    {
        "id": "gid://shopify/LineItem/2",
        "quantity": 1,
        "variant": None,
        "originalUnitPriceSet": bag("10.0", "9.0"),
    },
]


def test_an_order_in_shop_money_with_its_presentment_money_beside():
    row, extras, reason = shopify.order_row(order_node(), LINES, rules(), "here")
    assert reason is None
    assert row == {
        "order_id": "4100",
        "customer_id": "77",
        "order_status": "completed",
        "ordered_at": "2026-11-20T09:00:00Z",
        "currency": "USD",
        "subtotal": Decimal("21.00"),  # 2 × 5.50 + 10.0: before discounts
        "discount": Decimal("1.1"),
        "shipping": Decimal("0.0"),
        "tax": Decimal("3.30"),
        "total": Decimal("19.8"),
        "updated_at": "2026-11-21T10:00:00Z",
    }
    assert extras == {
        "_presentment_currency": "EUR",
        "_presentment_subtotal": Decimal("19.0"),
        "_presentment_discount": Decimal("1.0"),
        "_presentment_shipping": Decimal("0.0"),
        "_presentment_tax": Decimal("3.0"),
        "_presentment_total": Decimal("18.0"),
        "_taxes_included": True,
    }


def test_order_items_sell_variants_and_carry_their_order_time():
    rows = shopify.order_item_rows(order_node(), LINES, "here")
    assert [r for r, _ in rows] == [
        {
            "order_item_id": "1",
            "order_id": "4100",
            "product_id": "9",
            "quantity": 2,
            "unit_price": Decimal("5.50"),
            "updated_at": "2026-11-21T10:00:00Z",
        },
        # a custom item sells no variant: it goes to quarantine as a missing product_id
        {
            "order_item_id": "2",
            "order_id": "4100",
            "product_id": None,
            "quantity": 1,
            "unit_price": Decimal("10.0"),
            "updated_at": "2026-11-21T10:00:00Z",
        },
    ]
    assert [e["_presentment_unit_price"] for _, e in rows] == [Decimal("5.0"), Decimal("9.0")]


@pytest.mark.parametrize(
    ("financial", "fulfillment", "cancelled", "status"),
    [
        ("REFUNDED", "FULFILLED", "2026-11-21T00:00:00Z", "cancelled"),
        ("REFUNDED", "FULFILLED", None, "refunded"),
        ("PARTIALLY_REFUNDED", "FULFILLED", None, "completed"),
        ("PAID", "IN_PROGRESS", None, "shipped"),
        ("PAID", "PARTIALLY_FULFILLED", None, "shipped"),
        ("PARTIALLY_REFUNDED", "UNFULFILLED", None, "paid"),
        ("AUTHORIZED", "UNFULFILLED", None, "pending"),
        ("EXPIRED", "UNFULFILLED", None, None),
    ],
)
def test_the_order_status_comes_from_the_first_matching_rule(
    financial, fulfillment, cancelled, status
):
    node = order_node(
        displayFinancialStatus=financial,
        displayFulfillmentStatus=fulfillment,
        cancelledAt=cancelled,
    )
    row, _, reason = shopify.order_row(node, LINES, rules(), "here")
    assert row["order_status"] == status
    if status is None:
        assert "shopify.order_status" in reason and "EXPIRED" in reason


def test_amounts_in_shopifys_spellings_are_decimals_and_a_bad_one_is_kept_for_quarantine():
    assert [shopify.amount(a) for a in ("0.0", "57.23", "85.00", "102.0")] == [
        Decimal("0.0"),
        Decimal("57.23"),
        Decimal("85.00"),
        Decimal("102.0"),
    ]
    assert shopify.amount("n/a") == "n/a"
    bad = [{**LINES[0], "originalUnitPriceSet": bag("abc", "5.0")}]
    row, _, _ = shopify.order_row(order_node(), bad, rules(), "here")
    assert row["subtotal"] == "abc"
    batch = shopify.rows_to_batch(entity("orders"), [row], WINDOW.end)
    assert batch.table.num_rows == 0
    assert "subtotal" in batch.quarantined["reason"][0].as_py()


def test_a_refund_gives_back_its_lines_or_else_its_whole_amount():
    refunds = [
        (
            {
                "id": "gid://shopify/Refund/5",
                "createdAt": "2026-11-21T08:00:00Z",
                "updatedAt": "2026-11-21T08:00:01Z",
                "note": "damaged",
                "totalRefundedSet": bag("12.00", "11.0"),
            },
            [{"subtotalSet": bag("5.50", "5.0")}, {"subtotalSet": bag("4.40", "4.0")}],
        ),
        (
            # money given back without returning goods: no refund line items
            {
                "id": "gid://shopify/Refund/6",
                "createdAt": "2026-11-21T09:00:00Z",
                "updatedAt": "2026-11-22T09:00:00Z",
                "note": None,
                "totalRefundedSet": bag("2.20", "2.0"),
            },
            [],
        ),
    ]
    rows = shopify.refund_rows(order_node(), refunds, "here")
    assert [
        (r["refund_id"], r["amount"], r["reason"], e["_presentment_amount"]) for r, e in rows
    ] == [
        ("5", Decimal("9.90"), "damaged", Decimal("9.0")),
        ("6", Decimal("2.20"), None, Decimal("2.0")),
    ]
    # never later than its order's updatedAt, which bounds the read
    assert [r["updated_at"] for r, _ in rows] == ["2026-11-21T08:00:01Z", "2026-11-21T10:00:00Z"]


def test_customers_segments_names_and_countries():
    node = customer(3, "2026-11-22T01:00:00Z", tags=["Newsletter", " Wholesale ", "KEY-ACCOUNT"])
    row = shopify.customer_row(node, rules(), "defaultEmailAddress", "here")
    # key-account is listed first in the mapping file: it wins over wholesale
    assert (row["segment"], row["full_name"], row["country"]) == ("enterprise", "Ada Nr3", "DE")
    nameless = {**node, "firstName": None, "lastName": " ", "tags": [], "defaultAddress": None}
    row = shopify.customer_row(nameless, rules(country_default="US"), "defaultEmailAddress", "here")
    assert (row["segment"], row["full_name"], row["country"]) == ("consumer", "Ada Nr3", "US")
    row = shopify.customer_row(nameless, rules(), "defaultEmailAddress", "here")
    assert row["country"] is None  # no address and no default: quarantine


def test_products_are_variants_named_and_categorised():
    product = {
        "id": "gid://shopify/Product/1",
        "title": "Desk Lamp",
        "productType": "Lighting",
        "updatedAt": "2026-11-20T00:00:00Z",
    }
    variants = [
        {
            "id": "gid://shopify/ProductVariant/11",
            "title": "Default Title",
            "sku": None,
            "price": "25.00",
            "updatedAt": "2026-11-19T00:00:00Z",
            "inventoryItem": {"unitCost": {"amount": "10.5", "currencyCode": "USD"}},
        },
        {
            "id": "gid://shopify/ProductVariant/12",
            "title": "Brass",
            "sku": "L-2",
            "price": "30.00",
            "updatedAt": "2026-11-21T00:00:00Z",
            "inventoryItem": {"unitCost": None},
        },
    ]
    same = lambda value, currency: value  # noqa: E731
    rows = shopify.product_rows(
        product,
        variants,
        rules(categories={"Lighting": "Home"}, unit_cost_default=Decimal("0")),
        same,
        "USD",
        "here",
    )
    assert rows == [
        {
            "product_id": "11",
            "sku": "",
            "product_name": "Desk Lamp",
            "category": "Home",
            "list_price": Decimal("25.00"),
            "unit_cost": Decimal("10.5"),
            "updated_at": "2026-11-19T00:00:00Z",
        },
        {
            "product_id": "12",
            "sku": "L-2",
            "product_name": "Desk Lamp - Brass",
            "category": "Home",
            "list_price": Decimal("30.00"),
            "unit_cost": Decimal("0"),
            "updated_at": "2026-11-20T00:00:00Z",
        },
    ]
    untyped = {**product, "productType": ""}
    assert (
        shopify.product_rows(untyped, variants[:1], rules(), same, "USD", "here")[0]["category"]
        == "Uncategorized"
    )


def test_a_store_in_another_currency_has_its_prices_in_usd(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "fx_rates_2026-11-01.csv").write_text(
        "rate_date,currency,rate_to_usd\n2026-11-20,EUR,1.10\n2026-11-21,EUR,1.20\n2026-11-25,EUR,9\n"
    )
    fx = lambda e, s, w: shopify.read_fx_sheets(landing, e, s, w)  # noqa: E731
    to_usd = shopify._UsdPrices(fx, WINDOW)
    assert to_usd(Decimal("10.00"), "EUR") == Decimal("12.00")  # the latest rate by the 22nd
    assert to_usd(Decimal("10.00"), "USD") == Decimal("10.00")
    with pytest.raises(SourceDataError, match="no CNY rate"):
        to_usd(Decimal("10.00"), "CNY")


def test_test_orders_are_skipped(store, waits):
    test_order = order_node(
        id="gid://shopify/Order/1",
        test=True,
        lineItems={"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []},
    )
    real = order_node(
        lineItems={"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": LINES[:1]}
    )
    store.answers = [page("orders", [test_order, real], None, False)]
    client = shopify.ShopifyClient(settings_for(store))
    batches = list(shopify.read_orders(client, rules(), entity("orders"), {}, WINDOW))
    assert [r["order_id"] for b in batches for r in b.table.to_pylist()] == ["4100"]
    assert sum(b.quarantined.num_rows for b in batches) == 0


def test_the_search_floors_the_cursor_and_rounds_the_end_up():
    lower = datetime(2026, 11, 21, 8, 30, 15, 999_999, tzinfo=UTC)
    upper = datetime(2026, 11, 23, 0, 0, 0, 1, tzinfo=UTC)
    assert shopify._search(lower, upper) == (
        "updated_at:>='2026-11-21T08:30:15Z' AND updated_at:<'2026-11-23T00:00:01Z'"
    )
    assert shopify._search(None, upper - timedelta(microseconds=1)) == (
        "updated_at:<'2026-11-23T00:00:00Z'"
    )
