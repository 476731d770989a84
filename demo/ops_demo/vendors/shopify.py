"""The demo world's shop as a Shopify store: the GraphQL Admin API the Shopify dialect of the
sales loader reads (docs/sources.md, "Shopify").

Mounted by ``ops_demo.server`` at ``POST /admin/api/{version}/graphql.json``. It serves the
shop database the world writes (``shop.sqlite`` in the world directory, re-read when it
changes) in Shopify's shapes:

- ids are ``gid://shopify/<Type>/<number>``; the number is the world's own (``legacy_id``);
- the shop's currency is USD: every MoneyBag has ``shopMoney`` in USD (the world's amount at
  the fx rate of the order's day, rounded to the cent) and ``presentmentMoney`` in the order's
  currency (the world's amount); amounts are decimal strings written as Shopify writes them
  (``"0.0"``, ``"52.99"``, ``"10.6"``), a variant's ``price`` with two decimals (``"25.00"``);
- an order's ``displayFinancialStatus``, ``displayFulfillmentStatus`` and ``cancelledAt``
  follow from the world's ``order_status`` (``order_states``), its ``updatedAt`` is its last
  change or its last refund's, whichever is later (a refund changes its order);
- a customer's ``tags`` carry the segment (``wholesale`` for smb, ``key-account`` for
  enterprise, none for consumers) among other tags; ``defaultEmailAddress`` exists from API
  version 2025-04 on, ``email`` in every version;
- a product is the world's products of one category and noun ("Desk Organizer"), each of them
  a variant titled by its adjective ("Pro"), with its SKU, price and
  ``inventoryItem.unitCost``; the product's ``productType`` is the world's category;
- a refund has refund line items whose subtotals add up to the world's amount, spread over
  the order's lines; its ``totalRefundedSet`` adds the share of tax given back.

Not a GraphQL engine: a query is parsed into fields, arguments (literals or ``$variables``)
and selections (no fragments); the root fields ``orders``, ``customers``, ``products``
(connections with ``first``/``after``/``query``/``sortKey``), ``order``, ``product``,
``refund``, ``customer`` (by id) and ``shop`` are resolved, and every field asked for must
exist on its type (else Shopify's ``undefinedField`` error). ``query`` understands
``updated_at`` ranges (``updated_at:>='…' AND updated_at:<'…'``) and ignores other filters.

Cost and throttling: a query's requested cost is computed from its selections (an object 1,
a connection 2 + ``first`` × its node's cost, a list ``first`` × its item's cost), its
actual cost from what it returned. Each access token has a leaky bucket (config ``shopify``:
``maximum_available`` 1000, ``restore_rate`` 50 a second): the requested cost must be in the
bucket (else ``THROTTLED``, with HTTP ``throttled_status``, 200 by default), the actual cost is
taken from it; a query above ``max_query_cost`` (1000) is refused (``MAX_COST_EXCEEDED``).
Every answer carries ``extensions.cost`` and the header ``X-Shopify-API-Version``. A version
that is not one of ``API_VERSIONS`` gets 404 ``{"errors":"Not Found"}``, a wrong token 401
with a string ``errors``. ``test_orders`` (world order ids) serves those orders with
``test: true``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import math
import re
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ops_demo import DEMO_TOKENS

API_VERSIONS = tuple(
    f"{year}-{month:02d}" for year in (2024, 2025, 2026) for month in (1, 4, 7, 10)
)
EMAIL_ADDRESS_VERSION = "2025-04"
PATH = re.compile(r"/admin/api/(?P<version>[^/]+)/graphql\.json")
SHOP_CURRENCY = "USD"
# The token the demo's store accepts unless the server is given another (OPS_SHOP_API_TOKEN).
DEMO_TOKEN = DEMO_TOKENS["OPS_SHOP_API_TOKEN"]
DEFAULT_CONFIG: dict[str, Any] = {
    "maximum_available": 1000,
    "restore_rate": 50,
    "max_query_cost": 1000,
    "throttled_status": 200,
    "test_orders": [],
}
MAX_FIRST = 250
CENT = Decimal("0.01")
DOCS = "https://shopify.dev/api/usage/rate-limits"
# where each kind of world id lands among Shopify-like numbers (legacy_id)
OFFSETS = {
    "Customer": 7_100_000_000_000,
    "Order": 5_600_000_000_000,
    "LineItem": 13_000_000_000_000,
    "Refund": 900_000_000_000,
    "RefundLineItem": 400_000_000_000,
    "Product": 8_000_000_000_000,
    "ProductVariant": 44_000_000_000_000,
    "InventoryItem": 46_000_000_000_000,
}
SEGMENT_TAGS = {"smb": "wholesale", "enterprise": "key-account"}


class GraphQLError(Exception):
    """An error Shopify answers inside a 200: ``{"errors": [{"message", "extensions"}]}``."""

    def __init__(self, message: str, code: str | None = None, **extensions: Any) -> None:
        super().__init__(message)
        self.code, self.extensions = code, extensions

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": str(self)}
        if self.code:
            error["extensions"] = {"code": self.code, **self.extensions}
        return {"errors": [error]}


# --- ids, money, times ----------------------------------------------------------------------


def legacy_id(kind: str, world_id: str) -> str:
    """The Shopify number standing for a world id: ``C0000042`` -> ``7100000000042``; a line
    item ``O00000002-3`` -> order 2, line 3; a refund line item is its refund's number, line."""
    number, _, line = world_id[1:].partition("-")
    value = int(number) * 1000 + int(line) if line else int(number)
    return str(OFFSETS[kind] + value)


def gid(kind: str, number: str | int) -> str:
    return f"gid://shopify/{kind}/{number}"


def money_text(value: Decimal) -> str:
    """A MoneyV2 amount as Shopify writes it: at least one decimal, no trailing zeros."""
    text = f"{value.quantize(CENT):.2f}"
    return text[:-1] if text.endswith("0") else text


def money_bag(shop: Decimal, shown: Decimal, currency: str) -> dict[str, Any]:
    return {
        "__typename": "MoneyBag",
        "shopMoney": _money(shop, SHOP_CURRENCY),
        "presentmentMoney": _money(shown, currency),
    }


def _money(value: Decimal, currency: str) -> dict[str, Any]:
    return {"__typename": "MoneyV2", "amount": money_text(value), "currencyCode": currency}


def _cents(value: Any) -> Decimal:
    return Decimal(repr(float(value))).quantize(CENT, ROUND_HALF_UP)


def _instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    """DateTime as Shopify writes it: UTC, ``Z``, whole seconds (fractions kept if any)."""
    if moment.microsecond:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _micros(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def order_states(status: str, refunded: bool, number: int) -> tuple[str, str, bool]:
    """(displayFinancialStatus, displayFulfillmentStatus, cancelled) of a world order."""
    partly = "PARTIALLY_REFUNDED" if refunded else "PAID"
    return {
        "pending": ("PENDING" if number % 2 else "AUTHORIZED", "UNFULFILLED", False),
        "paid": (partly, "UNFULFILLED", False),
        "shipped": (partly, "IN_PROGRESS" if number % 2 else "PARTIALLY_FULFILLED", False),
        "completed": (partly, "FULFILLED", False),
        "refunded": ("REFUNDED", "FULFILLED", False),
        "cancelled": ("REFUNDED" if refunded else "VOIDED", "UNFULFILLED", True),
    }[status]


# --- the world's shop -----------------------------------------------------------------------


@dataclass
class _Order:
    world_id: str
    number: int
    row: dict[str, Any]
    rate: Decimal
    items: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    updated: datetime | None = None


class ShopWorld:
    """The world's shop database, read once (the emulator reloads it when the file changes)
    and turned into Shopify nodes on demand."""

    def __init__(self, path: Path) -> None:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            con.row_factory = sqlite3.Row
            table = {
                name: [dict(r) for r in con.execute(f"select * from {name}")]
                for name in (
                    "customers",
                    "products",
                    "orders",
                    "order_items",
                    "refunds",
                    "fx_rates",
                )
            }
        self.rates: dict[str, tuple[list[date], list[Decimal]]] = {}
        by_currency: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
        for r in table["fx_rates"]:
            by_currency[r["currency"]].append(
                (
                    date.fromisoformat(str(r["rate_date"])[:10]),
                    Decimal(repr(float(r["rate_to_usd"]))),
                )
            )
        for currency, rows in by_currency.items():
            rows.sort()
            self.rates[currency] = ([d for d, _ in rows], [r for _, r in rows])

        self.customers = {r["customer_id"]: r for r in table["customers"]}
        self.variants = {r["product_id"]: r for r in table["products"]}
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in sorted(table["products"], key=lambda r: r["product_id"]):
            adjective, _, noun = r["product_name"].partition(" ")
            r["_adjective"], r["_noun"] = adjective, noun or adjective
            groups[(r["category"], r["_noun"])].append(r["product_id"])
        self.products: dict[int, list[str]] = {}
        for number, (_, members) in enumerate(sorted(groups.items(), key=lambda g: g[1][0]), 1):
            self.products[number] = members
            for member in members:
                self.variants[member]["_product"] = number

        self.orders: dict[str, _Order] = {}
        for r in table["orders"]:
            number = int(r["order_id"][1:])
            day = _instant(str(r["ordered_at"])).date()
            self.orders[r["order_id"]] = _Order(
                r["order_id"], number, r, self.rate(r["currency"], day)
            )
        for r in sorted(table["order_items"], key=lambda r: r["order_item_id"]):
            self.orders[r["order_id"]].items.append(r)
        for r in sorted(table["refunds"], key=lambda r: r["refund_id"]):
            self.orders[r["order_id"]].refunds.append(r)
        self.refunds = {r["refund_id"]: r for r in table["refunds"]}
        for order in self.orders.values():
            times = [_instant(str(order.row["updated_at"]))]
            times += [_instant(str(r["updated_at"])) for r in order.refunds]
            order.updated = max(times)

        self.order_index = _Index([(o.updated, o.number, o.world_id) for o in self.orders.values()])
        self.customer_index = _Index(
            [
                (_instant(str(c["updated_at"])), int(c["customer_id"][1:]), c["customer_id"])
                for c in self.customers.values()
            ]
        )
        self.product_index = _Index(
            [
                (max(_instant(str(self.variants[m]["updated_at"])) for m in members), n, n)
                for n, members in self.products.items()
            ]
        )

    def rate(self, currency: str, day: date) -> Decimal:
        """USD per unit of ``currency`` on ``day``: the latest rate at or before it (the
        earliest one for a day before every rate)."""
        if currency == SHOP_CURRENCY or currency not in self.rates:
            return Decimal(1)
        days, rates = self.rates[currency]
        at = bisect.bisect_right(days, day)
        return rates[max(at - 1, 0)]

    # nodes

    def customer(self, world_id: str, version: str) -> dict[str, Any]:
        c = self.customers[world_id]
        number = legacy_id("Customer", world_id)
        first, _, last = str(c["full_name"]).partition(" ")
        tags = []
        if int(world_id[1:]) % 3 == 0:
            tags.append("newsletter")
        if c["segment"] in SEGMENT_TAGS:
            tags.append(SEGMENT_TAGS[c["segment"]])
        if int(world_id[1:]) % 4 == 0:
            tags.append("returning")
        node = {
            "__typename": "Customer",
            "id": gid("Customer", number),
            "legacyResourceId": number,
            "firstName": first,
            "lastName": last or None,
            "displayName": c["full_name"],
            "email": c["email"],
            "phone": None,
            "state": "ENABLED",
            "verifiedEmail": True,
            "tags": tags,
            "createdAt": _stamp(_instant(str(c["created_at"]))),
            "updatedAt": _stamp(_instant(str(c["updated_at"]))),
            "defaultAddress": {
                "__typename": "MailingAddress",
                "countryCodeV2": c["country"],
            },
        }
        if version == "unstable" or version >= EMAIL_ADDRESS_VERSION:
            node["defaultEmailAddress"] = {
                "__typename": "CustomerEmailAddress",
                "emailAddress": c["email"],
                "marketingState": "NOT_SUBSCRIBED",
            }
        return node

    def product(self, number: int) -> dict[str, Any]:
        members = self.products[number]
        first = self.variants[members[0]]
        times = [_instant(str(self.variants[m]["updated_at"])) for m in members]
        product_id = str(OFFSETS["Product"] + number)
        return {
            "__typename": "Product",
            "id": gid("Product", product_id),
            "legacyResourceId": product_id,
            "title": first["_noun"],
            "handle": first["_noun"].lower().replace(" ", "-"),
            "status": "ACTIVE",
            "productType": first["category"],
            "vendor": "Ops Demo Co",
            "tags": [],
            "createdAt": _stamp(min(times)),
            "updatedAt": _stamp(max(times)),
            "variants": lambda args: _Nested(
                [lambda m=m: self.variant(m) for m in members], "ProductVariant"
            ),
        }

    def variant(self, world_id: str) -> dict[str, Any]:
        v = self.variants[world_id]
        number = legacy_id("ProductVariant", world_id)
        return {
            "__typename": "ProductVariant",
            "id": gid("ProductVariant", number),
            "legacyResourceId": number,
            "title": v["_adjective"],
            "sku": v["sku"],
            "price": f"{_cents(v['list_price']):.2f}",  # the Money scalar: always two decimals
            "compareAtPrice": None,
            "createdAt": _stamp(_instant(str(v["updated_at"]))),
            "updatedAt": _stamp(_instant(str(v["updated_at"]))),
            "inventoryItem": {
                "__typename": "InventoryItem",
                "id": gid("InventoryItem", legacy_id("InventoryItem", world_id)),
                "unitCost": _money(_cents(v["unit_cost"]), SHOP_CURRENCY),
            },
            "product": lambda args: self.product(v["_product"]),
        }

    def order(self, world_id: str, version: str, test_orders: frozenset[str]) -> dict[str, Any]:
        o = self.orders[world_id]
        r = o.row
        currency = r["currency"]
        number = legacy_id("Order", world_id)
        financial, fulfillment, cancelled = order_states(
            r["order_status"], bool(o.refunds), o.number
        )
        amounts = {k: _cents(r[k]) for k in ("subtotal", "discount", "shipping", "tax", "total")}
        refunded = sum((self._refund_total(o, x)[0] for x in o.refunds), Decimal(0))

        def bag(value: Decimal) -> dict[str, Any]:
            return money_bag(self.convert(value, o.rate), value, currency)

        ordered = _stamp(_instant(str(r["ordered_at"])))
        customer_id = r["customer_id"]
        return {
            "__typename": "Order",
            "id": gid("Order", number),
            "legacyResourceId": number,
            "name": f"#{1000 + o.number}",
            "createdAt": ordered,
            "processedAt": ordered,
            "updatedAt": _stamp(o.updated),
            "cancelledAt": _stamp(_instant(str(r["updated_at"]))) if cancelled else None,
            "cancelReason": "CUSTOMER" if cancelled else None,
            "test": world_id in test_orders,
            "email": self.customers[customer_id]["email"]
            if customer_id in self.customers
            else None,
            "displayFinancialStatus": financial,
            "displayFulfillmentStatus": fulfillment,
            "currencyCode": SHOP_CURRENCY,
            "presentmentCurrencyCode": currency,
            "taxesIncluded": False,
            "customer": (lambda args: self.customer(customer_id, version))
            if customer_id in self.customers
            else None,
            "subtotalPriceSet": bag(amounts["subtotal"] - amounts["discount"]),
            "totalDiscountsSet": bag(amounts["discount"]),
            "totalShippingPriceSet": bag(amounts["shipping"]),
            "totalTaxSet": bag(amounts["tax"]),
            "totalPriceSet": bag(amounts["total"]),
            "totalRefundedSet": bag(refunded),
            "currentTotalPriceSet": bag(max(amounts["total"] - refunded, Decimal(0))),
            "lineItems": lambda args: _Nested(
                [lambda i=i: self.line_item(o, i) for i in o.items], "LineItem"
            ),
            "refunds": lambda args: [self.refund(o, x) for x in o.refunds][: _first(args, None)],
        }

    def convert(self, value: Decimal, rate: Decimal) -> Decimal:
        return (value * rate).quantize(CENT, ROUND_HALF_UP)

    def line_item(self, o: _Order, item: dict[str, Any]) -> dict[str, Any]:
        v = self.variants.get(item["product_id"])
        unit = _cents(item["unit_price"])
        title = v["_noun"] if v else "Custom item"
        variant_title = v["_adjective"] if v else None
        return {
            "__typename": "LineItem",
            "id": gid("LineItem", legacy_id("LineItem", item["order_item_id"])),
            "name": f"{title} - {variant_title}" if variant_title else title,
            "title": title,
            "variantTitle": variant_title,
            "quantity": int(item["quantity"]),
            "sku": v["sku"] if v else "",
            "variant": (lambda args: self.variant(item["product_id"])) if v else None,
            "product": (lambda args: self.product(v["_product"])) if v else None,
            "originalUnitPriceSet": money_bag(self.convert(unit, o.rate), unit, o.row["currency"]),
            "originalTotalSet": money_bag(
                self.convert(unit * int(item["quantity"]), o.rate),
                unit * int(item["quantity"]),
                o.row["currency"],
            ),
        }

    def _refund_total(self, o: _Order, refund: dict[str, Any]) -> tuple[Decimal, Decimal]:
        """(presentment amount given back, the same with its share of tax)."""
        amount = _cents(refund["amount"])
        base = _cents(o.row["subtotal"]) - _cents(o.row["discount"])
        tax = (amount * _cents(o.row["tax"]) / base).quantize(CENT) if base > 0 else Decimal(0)
        return amount, amount + tax

    def refund(self, o: _Order, refund: dict[str, Any]) -> dict[str, Any]:
        number = legacy_id("Refund", refund["refund_id"])
        amount, with_tax = self._refund_total(o, refund)
        currency = o.row["currency"]
        # spread the amount over the order's lines, in order; shop money adds up exactly
        shares: list[tuple[dict[str, Any], int, Decimal]] = []
        left = amount
        for item in o.items:
            unit = _cents(item["unit_price"])
            take = min(left, unit * int(item["quantity"]))
            if take > 0:
                quantity = min(int(item["quantity"]), max(1, math.ceil(take / unit)))
                shares.append((item, quantity, take))
                left -= take
        if left > 0 and shares:
            item, quantity, take = shares[-1]
            shares[-1] = (item, quantity, take + left)
        shop_total = self.convert(amount, o.rate)
        shop_parts = [self.convert(take, o.rate) for _, _, take in shares]
        if shop_parts:
            shop_parts[-1] = shop_total - sum(shop_parts[:-1], Decimal(0))
        lines = []
        for j, ((item, quantity, take), shop) in enumerate(zip(shares, shop_parts, strict=True), 1):
            line_number = str(OFFSETS["RefundLineItem"] + int(number) % 10**9 * 1000 + j)
            lines.append(
                {
                    "__typename": "RefundLineItem",
                    "id": gid("RefundLineItem", line_number),
                    "quantity": quantity,
                    "restockType": "RETURN",
                    "subtotalSet": money_bag(shop, take, currency),
                    "totalTaxSet": money_bag(Decimal(0), Decimal(0), currency),
                    "lineItem": lambda args, item=item: self.line_item(o, item),
                }
            )
        return {
            "__typename": "Refund",
            "id": gid("Refund", number),
            "legacyResourceId": number,
            "createdAt": _stamp(_instant(str(refund["refunded_at"]))),
            "updatedAt": _stamp(_instant(str(refund["updated_at"]))),
            "note": refund["reason"],
            "totalRefundedSet": money_bag(self.convert(with_tax, o.rate), with_tax, currency),
            "refundLineItems": lambda args: _Nested(
                [lambda line=line: line for line in lines], "RefundLineItem"
            ),
        }


class _Index:
    """The rows of one root connection, as (updatedAt in epoch microseconds, number, world
    reference), in the two orders it pages by: ``UPDATED_AT`` and ``ID``."""

    def __init__(self, rows: list[tuple[datetime, int, Any]]) -> None:
        entries = [(_micros(t), n, ref) for t, n, ref in rows]
        self.by_update = sorted(entries, key=lambda e: (e[0], e[1]))
        self.update_keys = [(e[0], e[1]) for e in self.by_update]
        self.by_number = sorted(entries, key=lambda e: e[1])


def _first(args: dict[str, Any], default: int | None) -> int | None:
    value = args.get("first", default)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise GraphQLError(f"Argument 'first' must be a non-negative integer, not {value!r}")
    if value > MAX_FIRST:
        raise GraphQLError(
            f"Argument 'first' may be at most {MAX_FIRST} on a connection, not {value}",
            "BAD_USER_INPUT",
        )
    return value


# --- connections ----------------------------------------------------------------------------


@dataclass
class _Page:
    """What a connection resolved to: its nodes (built lazily), with their cursors."""

    nodes: list[Callable[[], dict[str, Any]]]
    cursors: list[str]
    has_next: bool
    has_previous: bool


class _Nested:
    """A nested connection (line items, refund line items, variants): offset cursors."""

    def __init__(self, nodes: list[Callable[[], dict[str, Any]]], kind: str) -> None:
        self.nodes, self.kind = nodes, kind

    def page(self, args: dict[str, Any]) -> _Page:
        first = _first(args, None)
        if first is None:
            raise GraphQLError("you must provide one of first or last", "BAD_USER_INPUT")
        start = 0
        if args.get("after"):
            start = _decode(args["after"]).get("o", -1) + 1
        stop = min(start + first, len(self.nodes))
        return _Page(
            self.nodes[start:stop],
            [_encode({"o": i}) for i in range(start, stop)],
            stop < len(self.nodes),
            start > 0,
        )


def _encode(value: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def _decode(cursor: Any) -> dict[str, Any]:
    try:
        value = json.loads(base64.b64decode(str(cursor), validate=True))
    except (binascii.Error, ValueError):
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}") from None
    if not isinstance(value, dict):
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}")
    return value


_SEARCH = re.compile(r"updated_at:(?P<op>>=|<=|>|<|)'?(?P<value>[0-9T:.+\-Z]+)'?(?=\s|$)")


def _search_bounds(search: Any) -> tuple[int | None, int | None]:
    """[lower, upper) bounds in epoch microseconds of an ``updated_at`` search; other
    filters are ignored, as Shopify may ignore a filter it does not know."""
    lower = upper = None
    if not isinstance(search, str):
        return None, None
    for match in _SEARCH.finditer(search):
        try:
            moment = _micros(_instant(match["value"].strip()))
        except ValueError:
            raise GraphQLError(f"Invalid search value for updated_at: {match['value']!r}") from None
        op = match["op"]
        if op in (">=", ">", ""):
            bound = moment + (1 if op == ">" else 0)
            lower = bound if lower is None else max(lower, bound)
        if op in ("<", "<=", ""):
            bound = moment + (1 if op in ("<=", "") else 0)
            upper = bound if upper is None else min(upper, bound)
    return lower, upper


def root_page(index: _Index, args: dict[str, Any], build: Callable[[Any], dict[str, Any]]) -> _Page:
    """One page of a root connection: ``query``'s updated_at range, sorted by ``sortKey``
    (``ID`` when not given, as Shopify does), after the ``after`` cursor."""
    first = _first(args, None)
    if first is None:
        raise GraphQLError("you must provide one of first or last", "BAD_USER_INPUT")
    sort = args.get("sortKey") or "ID"
    if sort not in ("UPDATED_AT", "ID"):
        raise GraphQLError(f"sortKey {sort} is not supported by the demo store (UPDATED_AT, ID)")
    lower, upper = _search_bounds(args.get("query"))
    last = None
    if args.get("after"):
        cursor = _decode(args["after"])
        last = (cursor.get("last_value"), cursor.get("last_id"))
        if not all(type(v) is int for v in last):
            raise GraphQLError(f"Invalid cursor for current pagination sort: {args['after']!r}")
    if sort == "UPDATED_AT":
        keys = index.update_keys
        start = 0 if lower is None else bisect.bisect_left(keys, (lower, -1))
        stop = len(keys) if upper is None else bisect.bisect_left(keys, (upper, -1))
        if last is not None:
            start = max(start, bisect.bisect_right(keys, last))
        chosen = index.by_update[start:stop]
        value = 0  # the cursor's sort value: updatedAt
    else:  # by number, the update-time range picking rows here and there
        chosen = [e for e in index.by_number if _within(e[0], lower, upper)]
        if last is not None:
            chosen = [e for e in chosen if e[1] > last[1]]
        value = 1
    page = chosen[:first]
    return _Page(
        [lambda e=e: build(e[2]) for e in page],
        [_encode({"last_id": e[1], "last_value": e[value]}) for e in page],
        len(chosen) > first,
        last is not None,
    )


def _within(value: int, lower: int | None, upper: int | None) -> bool:
    return (lower is None or value >= lower) and (upper is None or value < upper)


# --- queries: parsing ---------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<skip>[\s,]+|#[^\n]*)|(?P<spread>\.\.\.)|(?P<punct>[!$():=@\[\]{}|])"
    r"|(?P<name>[_A-Za-z][_0-9A-Za-z]*)|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r'|(?P<string>"(?:\\.|[^"\\\n])*")'
)


@dataclass
class Field:
    name: str
    alias: str | None
    args: dict[str, Any]
    selections: list[Field] | None

    @property
    def key(self) -> str:
        return self.alias or self.name


class _Parser:
    def __init__(self, text: str, variables: dict[str, Any]) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                raise GraphQLError(f"Parse error on {text[position : position + 20]!r}")
            position = match.end()
            if match.lastgroup != "skip":
                self.tokens.append((match.lastgroup, match.group()))
        self.at = 0
        self.variables = variables

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise GraphQLError(
                f"Parse error: expected {value or 'more'}, got {token and token[1]!r}"
            )
        self.at += 1
        return token

    def document(self) -> list[Field]:
        token = self.peek()
        if token and token[1] in ("mutation", "subscription"):
            raise GraphQLError("the demo store answers queries only")
        if token and token[1] == "query":
            self.take()
            if self.peek() and self.peek()[0] == "name":
                self.take()
            if self.peek() and self.peek()[1] == "(":
                depth = 0
                while True:  # variable definitions: types do not matter here
                    kind, value = self.take()
                    depth += value == "("
                    depth -= value == ")"
                    if depth == 0:
                        break
        fields = self.selection_set()
        if self.peek() is not None:
            raise GraphQLError("Parse error: only one operation per document")
        return fields

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() and self.peek()[1] != "}":
            if self.peek()[0] == "spread":
                raise GraphQLError("the demo store does not support fragments")
            fields.append(self.field())
        self.take("}")
        return fields

    def field(self) -> Field:
        kind, name = self.take()
        if kind != "name":
            raise GraphQLError(f"Parse error: expected a field name, got {name!r}")
        alias = None
        if self.peek() and self.peek()[1] == ":":
            self.take()
            alias, name = name, self.take()[1]
        args = {}
        if self.peek() and self.peek()[1] == "(":
            self.take()
            while self.peek()[1] != ")":
                arg = self.take()[1]
                self.take(":")
                args[arg] = self.value()
            self.take(")")
        selections = None
        if self.peek() and self.peek()[1] == "{":
            selections = self.selection_set()
        return Field(name, alias, args, selections)

    def value(self) -> Any:
        kind, text = self.take()
        if text == "$":
            return self.variables.get(self.take()[1])
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return json.loads(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)
        if text == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
            self.take("]")
            return items
        raise GraphQLError(f"Parse error on {text!r}")


def requested_cost(fields: list[Field]) -> int:
    """What a query may cost, reserved before it runs: an object 1, a connection 2 + first ×
    its node, a list first × its item, a scalar and pageInfo nothing."""
    total = 0
    for f in fields:
        if not f.selections or f.name == "pageInfo":
            continue
        if f.name in ("nodes", "node"):
            total += 1 + requested_cost(f.selections)
            continue
        if f.name == "edges":
            total += requested_cost(f.selections)
            continue
        first = f.args.get("first")
        inner = requested_cost(f.selections)
        if type(first) is int:
            wrapped = any(g.name in ("nodes", "edges") for g in f.selections)
            total += 2 + first * inner if wrapped else first * (1 + inner)
        else:
            total += 1 + inner
    return total


# --- queries: resolving -------------------------------------------------------------------


def _project(value: Any, f: Field) -> tuple[Any, int]:
    """The value of field ``f`` shaped by its selections, and what it actually cost."""
    if isinstance(value, _Nested):
        value = value.page(f.args)
    if isinstance(value, _Page):
        return _connection(value, f)
    if isinstance(value, dict):
        if not f.selections:
            raise GraphQLError(
                f"Field '{f.name}' of type '{value.get('__typename')}' must have a selection "
                "of subfields",
                "selectionMismatch",
            )
        return _object(value, f.selections)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        projected = [_project(item, f) for item in value]
        return [p for p, _ in projected], sum(c for _, c in projected)
    if f.selections and value is not None and not isinstance(value, list):
        raise GraphQLError(
            f"Selections can't be made on scalars (field '{f.name}')", "selectionMismatch"
        )
    return value, 0


def _object(obj: dict[str, Any], selections: list[Field]) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    cost = 0 if obj.get("__typename") == "PageInfo" else 1
    for f in selections:
        if f.name == "__typename":
            out[f.key] = obj["__typename"]
            continue
        if f.name not in obj:
            type_name = obj.get("__typename", "Object")
            raise GraphQLError(
                f"Field '{f.name}' doesn't exist on type '{type_name}'",
                "undefinedField",
                typeName=type_name,
                fieldName=f.name,
            )
        value = obj[f.name]
        if callable(value):
            value = value(f.args)
        out[f.key], spent = _project(value, f)
        cost += spent
    return out, cost


def _connection(page: _Page, f: Field) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    cost = 2
    built: list[dict[str, Any]] | None = None
    for sub in f.selections or []:
        if sub.name == "pageInfo":
            info = {
                "__typename": "PageInfo",
                "hasNextPage": page.has_next,
                "hasPreviousPage": page.has_previous,
                "startCursor": page.cursors[0] if page.cursors else None,
                "endCursor": page.cursors[-1] if page.cursors else None,
            }
            out[sub.key] = _object(info, sub.selections or [])[0]
            continue
        built = built if built is not None else [make() for make in page.nodes]
        if sub.name == "nodes":
            projected = [_object(n, sub.selections or []) for n in built]
            out[sub.key] = [p for p, _ in projected]
            cost += sum(c for _, c in projected)
        elif sub.name == "edges":
            edges = []
            for node, cursor in zip(built, page.cursors, strict=True):
                edge: dict[str, Any] = {}
                for part in sub.selections or []:
                    if part.name == "cursor":
                        edge[part.key] = cursor
                    elif part.name == "node":
                        edge[part.key], spent = _object(node, part.selections or [])
                        cost += spent
                    else:
                        raise GraphQLError(f"Field '{part.name}' doesn't exist on type 'Edge'")
                edges.append(edge)
            out[sub.key] = edges
        else:
            raise GraphQLError(
                f"Field '{sub.name}' doesn't exist on type 'Connection'", "undefinedField"
            )
    return out, cost


# --- the store ------------------------------------------------------------------------------


@dataclass
class _Bucket:
    available: float
    at: float


@dataclass
class Answer:
    status: int
    body: str
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0  # root rows served


class ShopifyStore:
    """The demo world's shop behind Shopify's GraphQL Admin API: authentication, versions,
    the query-cost bucket per token, and the answers."""

    name = "shopify"

    def __init__(self, world_dir: Path, token: str) -> None:
        self.path = Path(world_dir) / "shop.sqlite"
        self.meta = Path(world_dir) / "world.json"
        self.token = token
        self._world: tuple[Any, ShopWorld] | None = None
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self.clock = time.monotonic

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def world(self) -> ShopWorld:
        signature = tuple(_signature(p) for p in (self.path, self.meta))
        cached = self._world
        if cached is not None and cached[0] == signature:
            return cached[1]
        with self._lock:
            if self._world is None or self._world[0] != signature:
                if signature[0] is None:
                    raise FileNotFoundError(f"the demo world has no shop database at {self.path}")
                self._world = (signature, ShopWorld(self.path))
            return self._world[1]

    def answer(
        self,
        target: str,
        headers: Mapping[str, str],
        config: Mapping[str, Any],
        fault: str | None,
        body: bytes = b"",
    ) -> Answer:
        """The answer to ``POST target`` with ``body``. ``fault``: a failure the server chose
        to inject ("429", "500", "502", "503"), answered once the request is authenticated."""
        match = PATH.fullmatch(urlsplit(target).path)
        version = match["version"] if match else ""
        if version not in API_VERSIONS and version != "unstable":
            return Answer(404, json.dumps({"errors": "Not Found"}))
        if headers.get("X-Shopify-Access-Token") != self.token:
            message = "[API] Invalid API key or access token (unrecognized login or wrong password)"
            realm = {"WWW-Authenticate": 'Basic Realm="Shopify API Authentication"'}
            return Answer(401, json.dumps({"errors": message}), headers=realm)
        if fault == "429":
            limit = {"errors": "Exceeded 2 calls per second for api client. Reduce request rates."}
            return Answer(429, json.dumps(limit), headers={"Retry-After": "1.0"})
        if fault is not None:
            page = "<html><body><h1>Service unavailable, try again</h1></body></html>"
            return Answer(int(fault), page, content_type="text/html; charset=utf-8")
        return self._query(version, headers["X-Shopify-Access-Token"], body, config)

    def _query(self, version: str, token: str, body: bytes, config: Mapping[str, Any]) -> Answer:
        headers = {"X-Shopify-API-Version": version}
        try:
            request = json.loads(body or b"{}")
            query, variables = request["query"], request.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            missing = {"errors": {"query": "Required parameter missing or invalid"}}
            return Answer(400, json.dumps(missing), headers=headers)
        try:
            fields = _Parser(query, variables).document()
        except GraphQLError as exc:
            return Answer(200, json.dumps(exc.body()), headers=headers)
        requested = requested_cost(fields)
        if requested > config["max_query_cost"]:
            error = GraphQLError(
                f"Query cost is {requested}, which exceeds the single query max cost limit "
                f"({config['max_query_cost']}).",
                "MAX_COST_EXCEEDED",
                cost=requested,
                maxCost=config["max_query_cost"],
                documentation=DOCS,
            )
            return Answer(200, json.dumps(error.body()), headers=headers)
        with self._lock:
            bucket = self._bucket(token, config)
            if requested > bucket.available + 1e-6:  # not a float rounding short
                throttled = GraphQLError("Throttled", "THROTTLED", documentation=DOCS).body()
                throttled["extensions"] = {"cost": self._cost(requested, None, bucket, config)}
                return Answer(config["throttled_status"], json.dumps(throttled), headers=headers)
            bucket.available -= requested  # reserved now, the unused part given back below
        error_body: dict[str, Any] | None = None
        try:
            data, actual, served = self._resolve(fields, version, config)
        except GraphQLError as exc:
            data, actual, served, error_body = None, 0, 0, exc.body()
        except (OSError, sqlite3.Error) as exc:  # the world has no shop database (yet)
            with self._lock:
                self._bucket(token, config).available += requested
            return Answer(503, json.dumps({"errors": str(exc)}), headers=headers)
        with self._lock:
            bucket = self._bucket(token, config)
            bucket.available = min(
                bucket.available + requested - actual, float(config["maximum_available"])
            )
            cost = self._cost(requested, actual, bucket, config)
        answer = error_body or {"data": data}
        answer["extensions"] = {"cost": cost}
        return Answer(200, json.dumps(answer, separators=(",", ":")), headers=headers, rows=served)

    def _bucket(self, token: str, config: Mapping[str, Any]) -> _Bucket:
        now = self.clock()
        maximum = float(config["maximum_available"])
        bucket = self._buckets.setdefault(token, _Bucket(maximum, now))
        bucket.available = min(
            maximum, bucket.available + (now - bucket.at) * config["restore_rate"]
        )
        bucket.at = now
        return bucket

    @staticmethod
    def _cost(
        requested: int, actual: int | None, bucket: _Bucket, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": float(config["maximum_available"]),
                "currentlyAvailable": int(bucket.available),
                "restoreRate": float(config["restore_rate"]),
            },
        }

    def _resolve(
        self, fields: list[Field], version: str, config: Mapping[str, Any]
    ) -> tuple[dict[str, Any], int, int]:
        world = self.world()
        test_orders = frozenset(config["test_orders"])
        roots: dict[str, Callable[[dict[str, Any]], Any]] = {
            "orders": lambda a: root_page(
                world.order_index, a, lambda ref: world.order(ref, version, test_orders)
            ),
            "customers": lambda a: root_page(
                world.customer_index, a, lambda ref: world.customer(ref, version)
            ),
            "products": lambda a: root_page(world.product_index, a, world.product),
            "order": lambda a: _by_id(
                a, "Order", world.orders, lambda w: world.order(w, version, test_orders)
            ),
            "customer": lambda a: _by_id(
                a, "Customer", world.customers, lambda w: world.customer(w, version)
            ),
            "refund": lambda a: _refund_by_id(world, a),
            "product": lambda a: _product_by_id(world, a),
            "shop": lambda a: {
                "__typename": "Shop",
                "name": "Ops Demo Co",
                "currencyCode": SHOP_CURRENCY,
                "ianaTimezone": "UTC",
            },
        }
        data: dict[str, Any] = {}
        cost = served = 0
        for f in fields:
            if f.name not in roots:
                raise GraphQLError(
                    f"Field '{f.name}' doesn't exist on type 'QueryRoot'",
                    "undefinedField",
                    typeName="QueryRoot",
                    fieldName=f.name,
                )
            value = roots[f.name](f.args)
            if isinstance(value, _Page):
                served += len(value.nodes)
            data[f.key], spent = _project(value, f)
            cost += spent
        return data, cost, served


def _number(args: dict[str, Any], kind: str) -> int | None:
    match = re.fullmatch(rf"gid://shopify/{kind}/(\d+)", str(args.get("id", "")))
    return int(match[1]) - OFFSETS[kind] if match else None


def _by_id(args: dict[str, Any], kind: str, rows: dict[str, Any], build: Callable) -> Any:
    number = _number(args, kind)
    prefix = {"Order": ("O", 8), "Customer": ("C", 7)}[kind]
    world_id = f"{prefix[0]}{number:0{prefix[1]}d}" if number is not None else None
    return build(world_id) if world_id in rows else None


def _refund_by_id(world: ShopWorld, args: dict[str, Any]) -> Any:
    number = _number(args, "Refund")
    refund = world.refunds.get(f"R{number:08d}") if number is not None else None
    return world.refund(world.orders[refund["order_id"]], refund) if refund else None


def _product_by_id(world: ShopWorld, args: dict[str, Any]) -> Any:
    number = _number(args, "Product")
    return world.product(number) if number in world.products else None


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def validate_config(value: Any) -> dict[str, Any]:
    """The ``shopify`` key of the demo server's configuration, with defaults filled in;
    raises ValueError naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("shopify must be an object")
    unknown = sorted(set(value) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"shopify: unknown keys {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    out = {**DEFAULT_CONFIG, **value}
    for key in ("maximum_available", "restore_rate", "max_query_cost"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise ValueError(f"shopify.{key} must be a positive number, not {v!r}")
    if out["throttled_status"] not in (200, 429):
        raise ValueError(
            f"shopify.throttled_status must be 200 or 429, not {out['throttled_status']!r}"
        )
    tests = out["test_orders"]
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise ValueError("shopify.test_orders must be a list of world order ids")
    return out
