"""The demo server's Shopify store (ops_demo.vendors.shopify): Shopify's paths, versions,
authentication, paging, money spellings, query cost and throttling, over the demo world."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
import requests

from ops_demo.server import DemoServer
from ops_demo.vendors import shopify as store
from tests.unit.test_shopify_load import SHOP_TOKEN, UNLIMITED

ORDERS = """query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id updatedAt displayFinancialStatus
      totalPriceSet { shopMoney { amount currencyCode } presentmentMoney { amount currencyCode } } } }
  }
}"""


@pytest.fixture
def shop(world_dir):
    with DemoServer(
        world_dir,
        marketing_token="m-token",
        support_token="s-token",
        shop_token=SHOP_TOKEN,
        config={"shopify": UNLIMITED},
    ) as srv:
        yield srv


def post(
    server,
    query: str,
    variables: dict | None = None,
    *,
    version: str = "2026-10",
    token: str | None = SHOP_TOKEN,
):
    headers = {"X-Shopify-Access-Token": token} if token else {}
    return requests.post(
        f"{server.url}/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=10,
    )


def world_rows(world_dir, sql: str) -> list[tuple]:
    with sqlite3.connect(world_dir / "shop.sqlite") as con:
        return con.execute(sql).fetchall()


def test_an_unknown_version_is_not_found_and_a_wrong_token_unauthorised(shop):
    answer = post(shop, "{ shop { currencyCode } }", version="2019-04")
    assert (answer.status_code, answer.json()) == (404, {"errors": "Not Found"})
    for token in ("wrong", None):
        answer = post(shop, "{ shop { currencyCode } }", token=token)
        assert answer.status_code == 401
        assert isinstance(answer.json()["errors"], str)
        assert "Shopify API Authentication" in answer.headers["WWW-Authenticate"]
    answer = post(shop, "{ shop { currencyCode } }", version="2025-07")
    assert answer.json()["data"] == {"shop": {"currencyCode": "USD"}}
    assert answer.headers["X-Shopify-API-Version"] == "2025-07"


def test_fields_exist_per_version_and_unknown_ones_are_refused(shop):
    query = "{ customers(first: 1) { nodes { id defaultEmailAddress { emailAddress } } } }"
    old = post(shop, query, version="2025-01").json()
    assert "data" not in old
    error = old["errors"][0]
    assert error["extensions"]["code"] == "undefinedField"
    assert "defaultEmailAddress" in error["message"] and "Customer" in error["message"]
    new = post(shop, query, version="2025-04").json()
    assert "@" in new["data"]["customers"]["nodes"][0]["defaultEmailAddress"]["emailAddress"]
    bad = post(shop, "{ orders(first: 1) { nodes { agreements } } }").json()
    assert bad["errors"][0]["extensions"] == {
        "code": "undefinedField",
        "typeName": "Order",
        "fieldName": "agreements",
    }


def test_orders_page_by_updated_at_to_the_end_each_once(shop, world_dir):
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        body = post(shop, ORDERS, {"first": 17, "after": after}).json()
        connection = body["data"]["orders"]
        seen += [(e["node"]["updatedAt"], e["node"]["id"]) for e in connection["edges"]]
        assert connection["edges"][-1]["cursor"] == connection["pageInfo"]["endCursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        assert len(connection["edges"]) == 17
        after = connection["pageInfo"]["endCursor"]
    (orders,) = world_rows(world_dir, "select count(*) from orders")[0:1]
    assert len(seen) == orders[0] == len(set(seen))
    assert seen == sorted(seen, key=lambda s: (s[0], int(s[1].rsplit("/", 1)[1])))


def test_the_updated_at_search_picks_an_interval(shop):
    everything = post(shop, ORDERS, {"first": 200}).json()["data"]["orders"]["edges"]
    times = sorted(e["node"]["updatedAt"] for e in everything)
    low, high = times[len(times) // 3], times[2 * len(times) // 3]
    search = f"updated_at:>='{low}' AND updated_at:<'{high}'"
    some = post(shop, ORDERS, {"first": 200, "query": search}).json()["data"]["orders"]["edges"]
    assert sorted(e["node"]["updatedAt"] for e in some) == [t for t in times if low <= t < high]


def test_money_is_shop_money_in_usd_and_presentment_money_in_the_orders_currency(shop, world_dir):
    edges = post(shop, ORDERS, {"first": 200}).json()["data"]["orders"]["edges"]
    totals = {
        int(e["node"]["id"].rsplit("/", 1)[1]) % 10**9: e["node"]["totalPriceSet"] for e in edges
    }
    world = {
        int(oid[1:]): (currency, total)
        for oid, currency, total in world_rows(
            world_dir, "select order_id, currency, total from orders"
        )
    }
    spellings = set()
    for number, bag in totals.items():
        currency, total = world[number]
        assert bag["shopMoney"]["currencyCode"] == "USD"
        assert bag["presentmentMoney"]["currencyCode"] == currency
        assert float(bag["presentmentMoney"]["amount"]) == pytest.approx(total)
        if currency == "USD":
            assert bag["shopMoney"]["amount"] == bag["presentmentMoney"]["amount"]
        spellings.add(len(bag["presentmentMoney"]["amount"].split(".")[1]))
    assert spellings == {1, 2}, "amounts are not spelled as Shopify spells them ('10.6', '52.99')"
    prices = post(
        shop, "{ products(first: 5) { nodes { variants(first: 5) { nodes { price } } } } }"
    )
    for product in prices.json()["data"]["products"]["nodes"]:
        for variant in product["variants"]["nodes"]:
            assert len(variant["price"].split(".")[1]) == 2  # the Money scalar: two decimals


def test_order_states_come_from_the_worlds_order_status():
    assert store.order_states("completed", False, 1) == ("PAID", "FULFILLED", False)
    assert store.order_states("completed", True, 1) == ("PARTIALLY_REFUNDED", "FULFILLED", False)
    assert store.order_states("refunded", True, 1) == ("REFUNDED", "FULFILLED", False)
    assert store.order_states("cancelled", False, 1) == ("VOIDED", "UNFULFILLED", True)
    assert store.order_states("pending", False, 2)[0] == "AUTHORIZED"


def test_a_query_above_the_single_query_limit_is_refused_with_its_cost(shop):
    query = "{ orders(first: 100) { nodes { id lineItems(first: 50) { nodes { id originalUnitPriceSet { shopMoney { amount } } } } } } }"
    # 2 + 100 × (1 + 2 + 50 × (1 + 1 + 1))
    assert store.requested_cost(store._Parser(query, {}).document()) == 2 + 100 * (1 + 2 + 150)
    body = post(shop, query).json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["cost"] == 15302 and error["extensions"]["maxCost"] == 1000
    assert "data" not in body


@pytest.mark.parametrize("status", [200, 429])
def test_the_bucket_throttles_and_restores(shop, status):
    clock = [1000.0]
    shop._app.shopify.clock = lambda: clock[0]
    shop.configure(
        shopify={"maximum_available": 100, "restore_rate": 10, "throttled_status": status}
    )
    query = "{ customers(first: 30) { nodes { id defaultAddress { countryCodeV2 } } } }"  # 62
    first = post(shop, query).json()
    spent = first["extensions"]["cost"]
    assert spent["requestedQueryCost"] == 62
    assert spent["actualQueryCost"] <= 62
    left = spent["throttleStatus"]["currentlyAvailable"]
    assert left == 100 - spent["actualQueryCost"]
    throttled = post(shop, query)
    if left < 62:
        assert throttled.status_code == status
        body = throttled.json()
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in body
        assert body["extensions"]["cost"]["actualQueryCost"] is None
        clock[0] += (62 - left) / 10  # the wait the adapter computes
        assert "data" in post(shop, query).json()
    else:
        assert throttled.status_code == 200


def test_nested_connections_page_with_their_own_cursors(shop, world_dir):
    (order_id, items) = world_rows(
        world_dir,
        "select order_id, count(*) from order_items group by order_id order by 2 desc limit 1",
    )[0]
    gid = f"gid://shopify/Order/{store.legacy_id('Order', order_id)}"
    query = """query($id: ID!, $after: String) { order(id: $id) {
      lineItems(first: 1, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } } }"""
    ids, after = [], None
    while True:
        connection = post(shop, query, {"id": gid, "after": after}).json()["data"]["order"][
            "lineItems"
        ]
        ids += [n["id"] for n in connection["nodes"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert len(ids) == items == len(set(ids)) and items > 1


def test_a_bad_shopify_config_is_refused(shop):
    answer = requests.post(
        f"{shop.url}/_demo/config", json={"shopify": {"restore_rate": 0}}, timeout=5
    )
    assert answer.status_code == 400 and "restore_rate" in answer.text
    answer = requests.post(f"{shop.url}/_demo/config", json={"shopify": {"bucket": 1}}, timeout=5)
    assert answer.status_code == 400 and "bucket" in answer.text


def test_the_generic_endpoints_are_unchanged(shop):
    agents = requests.get(
        f"{shop.url}/support/v1/agents", headers={"Authorization": "Bearer s-token"}, timeout=5
    )
    assert agents.status_code == 200 and agents.json()["agents"]
    assert requests.post(f"{shop.url}/support/v1/agents", json={}, timeout=5).status_code == 405


def _ids(body: dict[str, Any]) -> list[str]:
    return [e["node"]["id"] for e in body["data"]["orders"]["edges"]]


def test_test_orders_are_served_as_test(shop):
    shop.configure(shopify={**UNLIMITED, "test_orders": ["O00000002"]})
    body = post(shop, '{ order(id: "gid://shopify/Order/5600000000002") { test } }').json()
    assert body["data"]["order"] == {"test": True}
    body = post(shop, '{ order(id: "gid://shopify/Order/5600000000003") { test } }').json()
    assert json.dumps(body["data"]) == '{"order": {"test": false}}'
