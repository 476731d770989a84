"""Sales from a Shopify store: the GraphQL Admin API translated into the contract's entities.

With ``OPS_SALES_DIALECT=shopify`` customers, products, orders, order items and refunds come
from ``POST {OPS_SHOP_API_URL}/admin/api/{OPS_SHOPIFY_API_VERSION}/graphql.json`` (the Admin
API access token in ``X-Shopify-Access-Token``). What Shopify does not hold comes from the
mapping file's ``shopify`` section: the order-status rules, segments from customer tags,
categories from product types, and where the fx rates are (a sheet in the landing folder or a
rates table in a database). docs/sources.md, "Shopify", says how each contract field is made.

Reading. Each entity is one incremental search, ``updated_at:>='<cursor>' AND
updated_at:<'<interval end>'`` sorted by ``UPDATED_AT``, paged with ``after: endCursor`` while
``hasNextPage``; a nested connection (line items, refund line items, variants) with more than
one page is read on with follow-up queries of its order, refund or product. The cursor moves to
the newest ``updatedAt`` read, the maximum over every row (pages are not promised sorted), and
never to the interval end or beyond: what changed after it is read by the next run.

Throttling. Every answer carries the store's query-cost bucket
(``extensions.cost.throttleStatus``): when it holds less than the last query asked for, the
next query waits ``(requested - available) / restoreRate`` seconds. ``THROTTLED`` (an HTTP 200
with errors and no data, or an HTTP 429) waits as long and asks again; ``MAX_COST_EXCEEDED``
lowers the page's ``first`` and asks again. 5xx answers, ``INTERNAL_SERVER_ERROR`` and broken
connections are retried with backoff (``OPS_HTTP_MAX_ATTEMPTS``); 401, 402, 403, 404, 423 and
``ACCESS_DENIED`` stop the load at once naming the setting to fix, and any other GraphQL error
(a field this API version does not have) names the URL and ``OPS_SHOPIFY_API_VERSION``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import requests
from requests.exceptions import ChunkedEncodingError, Timeout
from requests.exceptions import ConnectionError as RequestsConnectionError

from ops_warehouse.errors import SourceConfigError, SourceDataError, SourceUnavailableError
from ops_warehouse.pipeline.contracts import ORDER_STATUSES, PAGE_MAX_BYTES, Entity
from ops_warehouse.pipeline.contracts import entity as contract_entity
from ops_warehouse.pipeline.sources import landing, mapping, sales
from ops_warehouse.pipeline.sources.arrow_rows import Batch, Origin, rows_to_batch
from ops_warehouse.pipeline.sources.window import Window, advance_cursor, cursor_lower_bound
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)

Reader = Callable[[Entity, dict, Window], Iterator[Batch]]

# Shopify's display states an order-status rule may name (the OrderDisplayFinancialStatus and
# OrderDisplayFulfillmentStatus enums): a typo in the mapping file stops the load at start.
FINANCIAL_STATUSES = (
    "AUTHORIZED",
    "EXPIRED",
    "PAID",
    "PARTIALLY_PAID",
    "PARTIALLY_REFUNDED",
    "PENDING",
    "REFUNDED",
    "VOIDED",
)
FULFILLMENT_STATUSES = (
    "FULFILLED",
    "IN_PROGRESS",
    "ON_HOLD",
    "OPEN",
    "PARTIALLY_FULFILLED",
    "PENDING_FULFILLMENT",
    "REQUEST_DECLINED",
    "RESTOCKED",
    "SCHEDULED",
    "UNFULFILLED",
)
SEGMENTS = contract_entity("customers").allowed["segment"]

# The largest `first` Shopify accepts, and the sizes of the nested connections in a page of
# orders or products. Small nested sizes keep a page's requested cost (reserved from the
# bucket before it runs) low; the rare order or product with more is read on by follow-ups.
MAX_FIRST = 250
LINE_ITEMS_FIRST = 10
REFUNDS_FIRST = 3
REFUND_LINE_ITEMS_FIRST = 5
VARIANTS_FIRST = 10
FOLLOW_UP_FIRST = 100
# From this API version on, Customer.email is deprecated for defaultEmailAddress.
EMAIL_ADDRESS_VERSION = "2025-04"
API_VERSION = re.compile(r"\d{4}-(01|04|07|10)|unstable")
# Statuses that mean the store or the token is not usable as configured: never retried.
REFUSALS = {
    401: "refused the access token: check the setting OPS_SHOP_API_TOKEN (the Admin API access "
    "token of the store's custom app)",
    402: "says the shop is unavailable (frozen or unpaid): check the setting OPS_SHOP_API_URL "
    "names the right store, and the store's plan",
    403: "refused the token access (missing scopes or merchant approval): give the app behind "
    "OPS_SHOP_API_TOKEN the scopes read_customers, read_products, read_inventory, read_orders "
    "and read_all_orders",
    404: "has no such store or API version: check the settings OPS_SHOP_API_URL (e.g. "
    "https://acme.myshopify.com) and OPS_SHOPIFY_API_VERSION (a supported version, e.g. 2026-10)",
    423: "says the shop is locked: check the setting OPS_SHOP_API_URL and the store's status",
}
SHOWN = 160
# What Shopify says beyond the contract and raw keeps: the presentment money (what the
# customer paid, in the order's currency) beside the contract's shop money, and whether the
# order's prices include tax. Columns named like the loader's own ("_"), outside the
# contract: staging does not read them and the schema-drift check does not report them.
_MONEY = pa.decimal128(18, 2)
EXTRA_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "orders": {
        "_presentment_currency": pa.string(),
        "_presentment_subtotal": _MONEY,
        "_presentment_discount": _MONEY,
        "_presentment_shipping": _MONEY,
        "_presentment_tax": _MONEY,
        "_presentment_total": _MONEY,
        "_taxes_included": pa.bool_(),
    },
    "order_items": {"_presentment_unit_price": _MONEY},
    "refunds": {"_presentment_amount": _MONEY},
}
CENT = Decimal("0.01")

# The client's pause between queries (tests watch it).
_sleep = time.sleep


# --- the mapping file's section ---------------------------------------------------------


def _status_rules(value: Any, path: str) -> list[dict[str, Any]]:
    rules = mapping.list_of(_RULE)(value, path)
    if not rules:
        raise mapping.MappingError(f"mapping file: {path} must list at least one rule")
    return rules


def _country(value: Any, path: str) -> str:
    text = mapping.text(value, path)
    if not re.fullmatch(r"[A-Z]{2}", text):
        raise mapping.MappingError(
            f"mapping file: {path} must be an ISO 3166-1 alpha-2 country code such as US, "
            f"not {text!r}"
        )
    return text


_RULE = mapping.Section(
    {
        "when": mapping.Section(
            {
                "cancelled": mapping.Key(
                    mapping.boolean, doc="true: the order has a cancelledAt; false: it has none"
                ),
                "financial": mapping.Key(
                    mapping.list_of(mapping.one_of(*FINANCIAL_STATUSES)),
                    doc="displayFinancialStatus values, any of them",
                ),
                "fulfillment": mapping.Key(
                    mapping.list_of(mapping.one_of(*FULFILLMENT_STATUSES)),
                    doc="displayFulfillmentStatus values, any of them",
                ),
            },
            doc="every condition given must hold; none given: the rule matches every order",
        ),
        "status": mapping.Key(
            mapping.one_of(*ORDER_STATUSES), required=True, doc="the contract's order_status"
        ),
    }
)

SECTION = mapping.register(
    "shopify",
    mapping.Section(
        {
            "order_status": mapping.Key(
                _status_rules,
                required=True,
                doc="rules turning Shopify's financial, fulfilment and cancellation states into "
                "the contract's order_status, the first that matches wins; the Shopify dialect "
                "needs a mapping file (OPS_MAPPING_FILE) that lists them",
            ),
            "customers": mapping.Section(
                {
                    "segment_tags": mapping.Key(
                        mapping.mapping_of(mapping.text, mapping.one_of(*SEGMENTS)),
                        doc="customer tag: segment; the first tag listed that a customer "
                        "carries decides (tags compare ignoring case)",
                    ),
                    "segment_default": mapping.Key(
                        mapping.one_of(*SEGMENTS),
                        default="consumer",
                        doc="the segment of a customer carrying none of those tags",
                    ),
                    "country_default": mapping.Key(
                        _country,
                        doc="the country of a customer without a default address; unset: such "
                        "customers go to quarantine",
                    ),
                }
            ),
            "products": mapping.Section(
                {
                    "categories": mapping.Key(
                        mapping.mapping_of(mapping.text, mapping.text),
                        doc="productType: category; a product type not listed is its own category",
                    ),
                    "category_default": mapping.Key(
                        mapping.text,
                        default="Uncategorized",
                        doc="the category of a product without a productType",
                    ),
                    "unit_cost_default": mapping.Key(
                        mapping.decimal(),
                        doc="the unit cost (USD) of a variant whose inventory item has no cost; "
                        "unset: such variants go to quarantine",
                    ),
                }
            ),
            "fx_rates": mapping.Key(
                mapping.one_of("sheet", "database"),
                required=True,
                doc="where the fx rates come from, which Shopify does not hold: sheet = the "
                "files fx_rates_<YYYY-MM-DD>.csv in OPS_LANDING_DIR; database = the table "
                "fx_rates of OPS_SHOP_DB_URL (another table or column names through shop_sql)",
            ),
        }
    ),
)


@dataclass(frozen=True)
class Rules:
    """The ``shopify`` section of the mapping file, ready to apply."""

    order_status: tuple[dict[str, Any], ...]
    segment_tags: dict[str, str]  # lower-case tag: segment, in the file's order
    segment_default: str
    country_default: str | None
    categories: dict[str, str]
    category_default: str
    unit_cost_default: Decimal | None
    fx_rates: str

    @classmethod
    def of(cls, section: dict[str, Any]) -> Rules:
        customers, products = section["customers"], section["products"]
        tags: dict[str, str] = {}
        for tag, segment in (customers["segment_tags"] or {}).items():
            tags.setdefault(tag.lower(), segment)
        return cls(
            order_status=tuple(section["order_status"]),
            segment_tags=tags,
            segment_default=customers["segment_default"],
            country_default=customers["country_default"],
            categories=dict(products["categories"] or {}),
            category_default=products["category_default"],
            unit_cost_default=products["unit_cost_default"],
            fx_rates=section["fx_rates"],
        )

    def status(self, financial: Any, fulfillment: Any, cancelled: bool) -> str | None:
        """The contract's order_status by the first matching rule; None when none matches."""
        for rule in self.order_status:
            when = rule["when"]
            if when["cancelled"] is not None and when["cancelled"] != cancelled:
                continue
            if when["financial"] is not None and financial not in when["financial"]:
                continue
            if when["fulfillment"] is not None and fulfillment not in when["fulfillment"]:
                continue
            return rule["status"]
        return None

    def segment(self, tags: Any) -> str:
        carried = {t.strip().lower() for t in tags or () if isinstance(t, str)}
        for tag, segment in self.segment_tags.items():
            if tag in carried:
                return segment
        return self.segment_default

    def category(self, product_type: Any) -> str:
        if not isinstance(product_type, str) or not product_type.strip():
            return self.category_default
        return self.categories.get(product_type.strip(), product_type.strip())


# --- the client ---------------------------------------------------------------------------


class QueryCostTooHigh(SourceConfigError):
    """The store refused a query as costing more than one query may (``MAX_COST_EXCEEDED``);
    the pagers ask again for fewer rows."""

    def __init__(self, what: str, url: str, cost: int, max_cost: int) -> None:
        super().__init__(
            f"{what}: the Shopify API at {url} refused a query costing {cost}, above its "
            f"single-query limit {max_cost}."
        )
        self.cost, self.max_cost = cost, max_cost


class ShopifyClient:
    """One store's GraphQL Admin API: posts queries, keeps within the query-cost bucket,
    retries what may pass later and names the setting to fix for what will not."""

    def __init__(self, settings: Settings) -> None:
        if not settings.shop_api_token:
            raise SourceConfigError(
                f"sales: the Shopify access token is not set: set OPS_SHOP_API_TOKEN to the "
                f"Admin API access token of the store at {settings.shop_api_url} (the settings "
                "have no default token)."
            )
        version = settings.shopify_api_version.strip()
        if not API_VERSION.fullmatch(version):
            raise SourceConfigError(
                f"sales: OPS_SHOPIFY_API_VERSION is {version!r}, not a Shopify API version: "
                "a quarterly release YYYY-01, -04, -07 or -10 (e.g. 2026-10) or unstable."
            )
        self.version = version
        self.url = f"{settings.shop_api_url.rstrip('/')}/admin/api/{version}/graphql.json"
        self.page_size = max(1, min(settings.page_size, MAX_FIRST))
        self._timeout = settings.http_timeout_s
        self._attempts = max(1, settings.http_max_attempts)
        self._backoff_max = settings.http_backoff_max_s
        self._session = requests.Session()
        self._session.headers.update(
            {
                "X-Shopify-Access-Token": settings.shop_api_token,
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
        )
        self._pending_wait = 0.0
        self.requests_made = 0
        self.waits: list[float] = []

    @property
    def email_field(self) -> str:
        """The Customer field this API version keeps the e-mail address in."""
        newer = self.version == "unstable" or self.version >= EMAIL_ADDRESS_VERSION
        return "defaultEmailAddress" if newer else "email"

    def origin(self, root: str) -> Origin:
        """How quarantine reasons name where an entity's rows came from."""
        return Origin(f"Shopify query {root} at {self.url}")

    def query(self, what: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of one query; ``what`` names it in errors (``sales.orders``)."""
        attempt = 0
        while True:
            attempt += 1
            self._pause(self._pending_wait)
            self._pending_wait = 0.0
            self.requests_made += 1
            try:
                response = self._session.post(
                    self.url,
                    json={"query": query, "variables": variables},
                    timeout=self._timeout,
                    # a store address that redirects (a custom domain) is a wrong setting
                    allow_redirects=False,
                )
            except (RequestsConnectionError, Timeout, ChunkedEncodingError) as exc:
                self._again(attempt, what, exc.__class__.__name__, self._backoff(attempt))
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                wait = self._throttle_wait(response) if status == 429 else None
                if wait is None:
                    wait = self._backoff(attempt, response.headers.get("Retry-After"))
                self._again(attempt, what, f"HTTP {status}", wait)
                continue
            if status != 200:
                raise self._refused(status, response, what)
            body = self._json(response, what)
            self._note_cost(body)
            errors = body.get("errors")
            if errors:
                code, wait = self._graphql_errors(errors, body, what)
                self._again(attempt, what, code, self._backoff(attempt) if wait is None else wait)
                continue
            data = body.get("data")
            if not isinstance(data, dict):
                raise SourceDataError(
                    f"{what}: the answer of {self.url} has no data object (keys: "
                    f"{', '.join(map(repr, list(body)[:10])) or 'none'}). The load stopped; "
                    "nothing of this run was written."
                )
            return data

    # what to do about an answer

    def _again(self, attempt: int, what: str, why: str, wait: float) -> None:
        if attempt >= self._attempts:
            raise SourceUnavailableError(
                f"{what}: the Shopify API at {self.url} answered {why} on all {self._attempts} "
                "attempts (OPS_HTTP_MAX_ATTEMPTS): the store is overloaded, throttling or down; "
                "the next try may succeed. Check the setting OPS_SHOP_API_URL if it persists."
            )
        log.info("%s: %s from the Shopify API, again in %.2f s", what, why, wait)
        self._pause(wait)

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.waits.append(seconds)
            _sleep(seconds)

    def _backoff(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self._backoff_max)
            except ValueError:
                pass
        return min(0.5 * 2 ** (attempt - 1), self._backoff_max)

    def _throttle_wait(self, response: requests.Response) -> float | None:
        """How long a throttled query waits: the bucket's deficit over its restore rate (from
        the answer's cost), else None (an HTTP 429 without a cost: backoff)."""
        try:
            body = response.json()
        except ValueError:
            return None
        return _deficit_wait(body, throttled=True) if isinstance(body, dict) else None

    def _note_cost(self, body: dict[str, Any]) -> None:
        """Remember the wait the next query needs when the bucket holds less than this one
        asked for (the next one is likely to ask as much)."""
        wait = _deficit_wait(body)
        if wait:
            self._pending_wait = wait

    def _graphql_errors(
        self, errors: Any, body: dict[str, Any], what: str
    ) -> tuple[str, float | None]:
        """Raise for an error that will come back; for one that will pass (THROTTLED,
        INTERNAL_SERVER_ERROR) return its code and the wait before asking again (None:
        backoff)."""
        if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
            raise SourceConfigError(
                f"{what}: the Shopify API at {self.url} answered an error: {_short(errors)}. "
                "Check the settings OPS_SHOP_API_URL and OPS_SHOP_API_TOKEN."
            )
        codes = [(e.get("extensions") or {}).get("code") for e in errors]
        if "THROTTLED" in codes:
            self._pending_wait = 0.0  # the wait returned is the whole wait
            return "THROTTLED", _deficit_wait(body, throttled=True)
        if "MAX_COST_EXCEEDED" in codes:
            extensions = errors[codes.index("MAX_COST_EXCEEDED")].get("extensions") or {}
            cost, max_cost = extensions.get("cost"), extensions.get("maxCost")
            if isinstance(cost, int | float) and isinstance(max_cost, int | float) and cost:
                raise QueryCostTooHigh(what, self.url, int(cost), int(max_cost))
            raise SourceConfigError(
                f"{what}: the Shopify API at {self.url} refused the query as too costly "
                f"({_short(errors)})."
            )
        message = "; ".join(str(e.get("message", ""))[:SHOWN] for e in errors[:3])
        if "ACCESS_DENIED" in codes or "SHOP_INACTIVE" in codes:
            raise SourceConfigError(
                f"{what}: the Shopify API at {self.url} refused access: {message}. Give the "
                "app behind OPS_SHOP_API_TOKEN the scopes it names (read_customers, "
                "read_products, read_inventory, read_orders, read_all_orders), or check that "
                "OPS_SHOP_API_URL names an active store."
            )
        if codes and all(c == "INTERNAL_SERVER_ERROR" for c in codes):
            return "INTERNAL_SERVER_ERROR", None
        raise SourceConfigError(
            f"{what}: the Shopify API at {self.url} refused the query ({message}). Its API "
            f"version is {self.version} (OPS_SHOPIFY_API_VERSION): a field or argument this "
            "version does not have usually means the setting names an older or newer version "
            "than this adapter follows (docs/sources.md, Shopify)."
        )

    def _refused(self, status: int, response: requests.Response, what: str) -> Exception:
        try:
            shown = _short(response.json().get("errors"))
        except (ValueError, AttributeError):
            shown = _short(response.text)
        why = REFUSALS.get(
            status,
            "refused the request: check the settings OPS_SHOP_API_URL and OPS_SHOPIFY_API_VERSION",
        )
        return SourceConfigError(
            f"{what}: the Shopify API at {self.url} {why} (HTTP {status}: {shown})."
        )

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        stopped = "The load stopped; nothing of this run was written."
        content = response.content
        if len(content) > PAGE_MAX_BYTES:
            raise SourceDataError(
                f"{what}: the answer of {self.url} has {len(content):,} bytes, more than a "
                f"page may have ({PAGE_MAX_BYTES:,}): lower OPS_PAGE_SIZE. {stopped}"
            )
        try:
            body = response.json()
        except ValueError:
            start = content[:60].decode("utf-8", "replace")
            raise SourceDataError(
                f"{what}: the answer of {self.url} is not JSON (starting {start!r}). {stopped}"
            ) from None
        if not isinstance(body, dict):
            raise SourceDataError(
                f"{what}: the answer of {self.url} is not a JSON object. {stopped}"
            )
        return body


def _deficit_wait(body: dict[str, Any], throttled: bool = False) -> float | None:
    """Seconds until the bucket holds what the query asked for (0 when it already does; a
    throttled query waits at least for one point); None when the answer tells no cost."""
    cost = (body.get("extensions") or {}).get("cost")
    if not isinstance(cost, dict):
        return None
    status = cost.get("throttleStatus") or {}
    requested = cost.get("requestedQueryCost")
    available = status.get("currentlyAvailable")
    rate = status.get("restoreRate")
    numbers = (requested, available, rate)
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
        return None
    if not rate or rate <= 0:
        return None
    deficit = requested - available
    if deficit <= 0:
        return 0.0 if not throttled else 1.0 / rate
    # never longer than the bucket takes to fill up
    ceiling = status.get("maximumAvailable")
    wait = deficit / rate
    if isinstance(ceiling, int | float) and ceiling > 0:
        wait = min(wait, ceiling / rate)
    return wait


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


# --- reading answers ----------------------------------------------------------------------


def _get(obj: Any, key: str, where: str) -> Any:
    """A field the query asked for; an answer without it is not Shopify's."""
    if not isinstance(obj, dict) or key not in obj:
        raise SourceDataError(
            f"{where}: the answer lacks the field {key!r} the query asked for (got "
            f"{_short(sorted(obj) if isinstance(obj, dict) else obj)}). The load stopped; "
            "nothing of this run was written."
        )
    return obj[key]


def _nodes(connection: Any, where: str) -> list[dict[str, Any]]:
    """A connection's nodes, given as ``nodes`` or as ``edges { node }``."""
    if isinstance(connection, dict) and "nodes" in connection:
        nodes = connection["nodes"]
    elif isinstance(connection, dict) and isinstance(connection.get("edges"), list):
        nodes = [e.get("node") if isinstance(e, dict) else e for e in connection["edges"]]
    else:
        raise SourceDataError(
            f"{where}: a connection without nodes or edges ({_short(connection)}). The load "
            "stopped; nothing of this run was written."
        )
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise SourceDataError(
            f"{where}: the nodes of a connection are not a list of objects. The load stopped; "
            "nothing of this run was written."
        )
    return nodes


def _page_info(connection: dict[str, Any], where: str) -> tuple[bool, str | None]:
    info = _get(connection, "pageInfo", where)
    has_next = _get(info, "hasNextPage", where)
    cursor = info.get("endCursor") if isinstance(info, dict) else None
    if not isinstance(has_next, bool) or (has_next and (not isinstance(cursor, str) or not cursor)):
        raise SourceDataError(
            f"{where}: pageInfo {_short(info)} breaks the paging protocol (hasNextPage true or "
            "false; an endCursor when there is a next page): the load cannot tell where the "
            "list goes on. The load stopped; nothing of this run was written."
        )
    return has_next, cursor


def _rest(
    nodes: list[dict[str, Any]],
    connection: dict[str, Any],
    where: str,
    follow: Callable[[str], dict[str, Any]],
) -> list[dict[str, Any]]:
    """A nested connection's nodes, its later pages read with ``follow(after)``."""
    seen: set[str] = set()
    has_next, cursor = _page_info(connection, where)
    while has_next:
        if cursor in seen:
            raise SourceDataError(
                f"{where}: the endCursor {cursor[:60]!r} was served before: paging would never "
                "end. The load stopped; nothing of this run was written."
            )
        seen.add(cursor)
        connection = follow(cursor)
        nodes = nodes + _nodes(connection, where)
        has_next, cursor = _page_info(connection, where)
    return nodes


def legacy_id(gid: Any) -> Any:
    """``gid://shopify/Order/5600000000123`` -> ``5600000000123`` (the id the admin shows);
    anything else as served."""
    if isinstance(gid, str) and gid.startswith("gid://"):
        return gid.rsplit("/", 1)[-1]
    return gid


def amount(value: Any) -> Any:
    """A money amount as a Decimal (``"0.0"``, ``"57.23"``, ``"85.00"``); a value that is not
    one stays as served, so that its row goes to quarantine naming it."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return value
    return number if number.is_finite() else value


def _money(bag: Any, side: str, where: str) -> tuple[Any, Any]:
    """(amount, currency) of one side of a MoneyBag: ``shopMoney`` or ``presentmentMoney``."""
    money = _get(bag, side, where)
    return amount(_get(money, "amount", where)), _get(money, "currencyCode", where)


def _total(parts: list[Any]) -> Any:
    """The sum of Decimals; else the first part that is not one (its row's reason names it)."""
    for part in parts:
        if not isinstance(part, Decimal):
            return part
    return sum(parts, Decimal(0))


def _times(quantity: Any, price: Any) -> Any:
    if isinstance(quantity, int) and not isinstance(quantity, bool):
        return quantity * price if isinstance(price, Decimal) else price
    return quantity


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _earlier(own: Any, parent: Any) -> Any:
    """A row's ``updated_at``: its own time, never later than its parent's (the read is bounded
    by the parent's ``updatedAt``); as served when either cannot be read."""
    mine, theirs = _instant(own), _instant(parent)
    if mine is None or theirs is None or mine <= theirs:
        return own
    return parent


def _search(lower: datetime | None, upper: datetime) -> str:
    """The search for rows changed in [lower, upper), to the second: the lower bound floored,
    the upper one rounded up (rows at or after ``upper`` are dropped and read next run)."""
    if upper.microsecond:
        upper = upper.replace(microsecond=0) + timedelta(seconds=1)
    parts = [f"updated_at:<'{upper.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'"]
    if lower is not None:
        parts.insert(0, f"updated_at:>='{lower.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'")
    return " AND ".join(parts)


def _advance(state: dict[str, Any], nodes: list[dict[str, Any]], end: datetime) -> None:
    """The cursor: the newest updatedAt read before the interval end (every node counts:
    pages are not promised sorted); never backwards."""
    times = [t for t in (_instant(n.get("updatedAt")) for n in nodes) if t is not None and t < end]
    if not times:
        return
    newest = max(times)
    stored = state.get("cursor")
    if stored is None or newest > datetime.fromisoformat(stored):
        state["cursor"] = newest.isoformat()


def _with_extras(batch: Batch, entity: Entity, extras: dict[Any, dict[str, Any]]) -> Batch:
    """The rows loaded, each with its extra columns (looked up by its key); a value that is
    not of its column's type is null."""
    keys = batch.table[entity.primary_key[0]].to_pylist()
    for name, kind in EXTRA_COLUMNS[entity.name].items():
        values = [extras.get(k, {}).get(name) for k in keys]
        if kind == _MONEY:
            values = [_cents(v) for v in values]
        elif kind == pa.string():
            values = [v if isinstance(v, str) else None for v in values]
        else:
            values = [v if isinstance(v, bool) else None for v in values]
        batch.table = batch.table.append_column(name, pa.array(values, kind))
    return batch


def _cents(value: Any) -> Decimal | None:
    """A money amount raw's decimal(18, 2) holds as it is, else None."""
    if not isinstance(value, Decimal) or abs(value) >= 10**16 or value != value.quantize(CENT):
        return None
    return value


# --- rows of the contract -----------------------------------------------------------------


def customer_row(node: dict[str, Any], rules: Rules, email_field: str, where: str) -> dict:
    """A Customer node as a row of ``customers``."""
    if email_field == "email":
        email = _get(node, "email", where)
    else:
        address = _get(node, "defaultEmailAddress", where)
        email = address.get("emailAddress") if isinstance(address, dict) else None
    names = [_get(node, "firstName", where), _get(node, "lastName", where)]
    full_name = " ".join(n.strip() for n in names if isinstance(n, str) and n.strip())
    default_address = _get(node, "defaultAddress", where)
    country = default_address.get("countryCodeV2") if isinstance(default_address, dict) else None
    return {
        "customer_id": legacy_id(_get(node, "id", where)),
        "email": email,
        # Shopify's displayName falls back to the e-mail or phone when there is no name
        "full_name": full_name or _get(node, "displayName", where),
        "country": country or rules.country_default,
        "segment": rules.segment(_get(node, "tags", where)),
        "created_at": _get(node, "createdAt", where),
        "updated_at": _get(node, "updatedAt", where),
    }


def product_rows(
    node: dict[str, Any],
    variants: list[dict[str, Any]],
    rules: Rules,
    to_usd: Callable[[Any, Any], Any],
    shop_currency: str,
    where: str,
) -> list[dict]:
    """A Product node's variants as rows of ``products``: a line item sells a variant, so a
    variant is what ``order_items.product_id`` refers to."""
    title = _get(node, "title", where)
    category = rules.category(_get(node, "productType", where))
    product_updated = _get(node, "updatedAt", where)
    rows = []
    for variant in variants:
        variant_title = _get(variant, "title", where)
        name = (
            title if variant_title in (None, "", "Default Title") else f"{title} - {variant_title}"
        )
        inventory = _get(variant, "inventoryItem", where)
        cost = inventory.get("unitCost") if isinstance(inventory, dict) else None
        if isinstance(cost, dict):
            unit_cost = to_usd(amount(cost.get("amount")), cost.get("currencyCode"))
        else:
            unit_cost = rules.unit_cost_default
        sku = _get(variant, "sku", where)
        rows.append(
            {
                "product_id": legacy_id(_get(variant, "id", where)),
                # Shopify serves a variant without SKU as null or "": both load as ""
                "sku": "" if sku is None else sku,
                "product_name": name,
                "category": category,
                "list_price": to_usd(amount(_get(variant, "price", where)), shop_currency),
                "unit_cost": unit_cost,
                "updated_at": _earlier(_get(variant, "updatedAt", where), product_updated),
            }
        )
    return rows


ORDER_MONEY = {
    "discount": "totalDiscountsSet",
    "shipping": "totalShippingPriceSet",
    "tax": "totalTaxSet",
    "total": "totalPriceSet",
}


def order_row(
    node: dict[str, Any], lines: list[dict[str, Any]], rules: Rules, where: str
) -> tuple[dict, dict, str | None]:
    """An Order node (with all its line items) as a row of ``orders``, its extra columns, and
    why it cannot load when no status rule matches."""
    financial = _get(node, "displayFinancialStatus", where)
    fulfillment = _get(node, "displayFulfillmentStatus", where)
    cancelled = _get(node, "cancelledAt", where) is not None
    status = rules.status(financial, fulfillment, cancelled)
    reason = None
    if status is None:
        reason = (
            "no rule of shopify.order_status in the mapping file matches the order "
            f"(displayFinancialStatus {financial}, displayFulfillmentStatus {fulfillment}, "
            f"{'cancelled' if cancelled else 'not cancelled'})"
        )
    shop = {f: _money(_get(node, bag, where), "shopMoney", where) for f, bag in ORDER_MONEY.items()}
    shown = {
        f: _money(_get(node, bag, where), "presentmentMoney", where)
        for f, bag in ORDER_MONEY.items()
    }
    prices = [_get(line, "originalUnitPriceSet", where) for line in lines]
    quantities = [_get(line, "quantity", where) for line in lines]
    subtotal = _total(
        [
            _times(q, _money(p, "shopMoney", where)[0])
            for q, p in zip(quantities, prices, strict=True)
        ]
    )
    shown_subtotal = _total(
        [
            _times(q, _money(p, "presentmentMoney", where)[0])
            for q, p in zip(quantities, prices, strict=True)
        ]
    )
    currencies = {c for _, c in shop.values()}
    if len(currencies) > 1 and reason is None:
        reason = (
            f"the order's shop money comes in several currencies ({sorted(map(str, currencies))})"
        )
    customer = _get(node, "customer", where)
    row = {
        "order_id": legacy_id(_get(node, "id", where)),
        "customer_id": legacy_id(customer.get("id")) if isinstance(customer, dict) else None,
        "order_status": status,
        "ordered_at": _get(node, "processedAt", where),
        "currency": shop["total"][1],
        "subtotal": subtotal,
        **{f: value for f, (value, _) in shop.items()},
        "updated_at": _get(node, "updatedAt", where),
    }
    extras = {
        "_presentment_currency": shown["total"][1],
        "_presentment_subtotal": shown_subtotal,
        **{f"_presentment_{f}": value for f, (value, _) in shown.items()},
        # a tax-inclusive store's prices (and so subtotal) hold the tax (docs/sources.md)
        "_taxes_included": _get(node, "taxesIncluded", where),
    }
    return row, extras, reason


def order_item_rows(
    node: dict[str, Any], lines: list[dict[str, Any]], where: str
) -> list[tuple[dict, dict]]:
    """An order's line items as rows of ``order_items`` (with presentment unit prices)."""
    order_id = legacy_id(_get(node, "id", where))
    updated = _get(node, "updatedAt", where)
    out = []
    for line in lines:
        variant = _get(line, "variant", where)
        price = _get(line, "originalUnitPriceSet", where)
        row = {
            "order_item_id": legacy_id(_get(line, "id", where)),
            "order_id": order_id,
            # a custom item or a deleted variant has none: the row goes to quarantine
            "product_id": legacy_id(variant.get("id")) if isinstance(variant, dict) else None,
            "quantity": _get(line, "quantity", where),
            "unit_price": _money(price, "shopMoney", where)[0],
            # line items have no time of their own: their order's last change
            "updated_at": updated,
        }
        out.append((row, {"_presentment_unit_price": _money(price, "presentmentMoney", where)[0]}))
    return out


def refund_rows(
    node: dict[str, Any], refunds: list[tuple[dict[str, Any], list[dict[str, Any]]]], where: str
) -> list[tuple[dict, dict]]:
    """An order's refunds (each with all its refund line items) as rows of ``refunds``. The
    amount is the product revenue given back: the refund line items' subtotals; a refund
    without line items (money given back without returning goods) counts whole."""
    order_id = legacy_id(_get(node, "id", where))
    updated = _get(node, "updatedAt", where)
    out = []
    for refund, lines in refunds:
        if lines:
            subtotals = [_get(line, "subtotalSet", where) for line in lines]
            shop = _total([_money(s, "shopMoney", where)[0] for s in subtotals])
            shown = _total([_money(s, "presentmentMoney", where)[0] for s in subtotals])
        else:
            refunded = _get(refund, "totalRefundedSet", where)
            shop = _money(refunded, "shopMoney", where)[0]
            shown = _money(refunded, "presentmentMoney", where)[0]
        row = {
            "refund_id": legacy_id(_get(refund, "id", where)),
            "order_id": order_id,
            "refunded_at": _get(refund, "createdAt", where),
            "amount": shop,
            "reason": _get(refund, "note", where),
            "updated_at": _earlier(_get(refund, "updatedAt", where), updated),
        }
        out.append((row, {"_presentment_amount": shown}))
    return out


# --- queries ------------------------------------------------------------------------------

MONEY = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"
PAGE_INFO = "pageInfo { hasNextPage endCursor }"
LINE_ITEM = f"id quantity variant {{ id }} originalUnitPriceSet {{ {MONEY} }}"
REFUND = (
    f"id createdAt updatedAt note totalRefundedSet {{ {MONEY} }} "
    f"refundLineItems(first: $refundLineItems) {{ {PAGE_INFO} nodes {{ subtotalSet {{ {MONEY} }} }} }}"
)
VARIANT = "id title sku price updatedAt inventoryItem { unitCost { amount currencyCode } }"
ROOT_ARGS = "first: $first, after: $after, query: $query, sortKey: UPDATED_AT"

ORDERS_QUERY = f"""query Orders($first: Int!, $after: String, $query: String, $lineItems: Int!) {{
  orders({ROOT_ARGS}) {{
    {PAGE_INFO}
    nodes {{
      id processedAt updatedAt cancelledAt test taxesIncluded
      displayFinancialStatus displayFulfillmentStatus
      customer {{ id }}
      totalDiscountsSet {{ {MONEY} }}
      totalShippingPriceSet {{ {MONEY} }}
      totalTaxSet {{ {MONEY} }}
      totalPriceSet {{ {MONEY} }}
      lineItems(first: $lineItems) {{ {PAGE_INFO} nodes {{ {LINE_ITEM} }} }}
    }}
  }}
}}"""
ORDER_LINE_ITEMS_QUERY = f"""query OrderLineItems($id: ID!, $first: Int!, $after: String) {{
  order(id: $id) {{ lineItems(first: $first, after: $after) {{ {PAGE_INFO} nodes {{ {LINE_ITEM} }} }} }}
}}"""
REFUNDS_QUERY = f"""query OrderRefunds($first: Int!, $after: String, $query: String,
    $refunds: Int!, $refundLineItems: Int!) {{
  orders({ROOT_ARGS}) {{
    {PAGE_INFO}
    nodes {{ id updatedAt test refunds(first: $refunds) {{ {REFUND} }} }}
  }}
}}"""
ORDER_ALL_REFUNDS_QUERY = f"""query OrderAllRefunds($id: ID!, $refundLineItems: Int!) {{
  order(id: $id) {{ refunds {{ {REFUND} }} }}
}}"""
REFUND_LINE_ITEMS_QUERY = f"""query RefundLineItems($id: ID!, $first: Int!, $after: String) {{
  refund(id: $id) {{
    refundLineItems(first: $first, after: $after) {{ {PAGE_INFO} nodes {{ subtotalSet {{ {MONEY} }} }} }}
  }}
}}"""
PRODUCTS_QUERY = f"""query Products($first: Int!, $after: String, $query: String, $variants: Int!) {{
  products({ROOT_ARGS}) {{
    {PAGE_INFO}
    nodes {{
      id title productType updatedAt
      variants(first: $variants) {{ {PAGE_INFO} nodes {{ {VARIANT} }} }}
    }}
  }}
}}"""
PRODUCT_VARIANTS_QUERY = f"""query ProductVariants($id: ID!, $first: Int!, $after: String) {{
  product(id: $id) {{ variants(first: $first, after: $after) {{ {PAGE_INFO} nodes {{ {VARIANT} }} }} }}
}}"""
SHOP_QUERY = "query Shop { shop { currencyCode } }"


def customers_query(email_field: str) -> str:
    if email_field == "defaultEmailAddress":
        email_field = "defaultEmailAddress { emailAddress }"
    return f"""query Customers($first: Int!, $after: String, $query: String) {{
  customers({ROOT_ARGS}) {{
    {PAGE_INFO}
    nodes {{
      id createdAt updatedAt firstName lastName displayName tags
      {email_field}
      defaultAddress {{ countryCodeV2 }}
    }}
  }}
}}"""


# --- paging -------------------------------------------------------------------------------


def fitting(
    client: ShopifyClient,
    what: str,
    query: str,
    variables: dict[str, Any],
    first: int,
    name: str,
) -> tuple[dict[str, Any], int]:
    """The data of a query asking for ``first`` rows, or fewer while the store finds the
    query too costly (``MAX_COST_EXCEEDED``: the cost grows with ``first``); returns the data
    and the ``first`` that fitted, for the pages after it."""
    while True:
        try:
            return client.query(what, query, {**variables, "first": first}), first
        except QueryCostTooHigh as exc:
            if first == 1:
                raise SourceConfigError(
                    f"{what}: the Shopify API at {client.url} refuses the {name} query as "
                    f"costing {exc.cost}, above its single-query limit {exc.max_cost}, even for "
                    "one row a page: the store's limit is below what this adapter needs."
                ) from None
            first = max(1, min(first - 1, first * exc.max_cost // exc.cost))
            log.info("%s: the %s query costs %s; asking %d a page", what, name, exc.cost, first)


def pages(
    client: ShopifyClient, what: str, query: str, variables: dict[str, Any], root: str
) -> Iterator[list[dict[str, Any]]]:
    """Every page of the root connection ``root``, following ``endCursor`` while
    ``hasNextPage``, with as many rows a page as the store's cost limit lets a query ask."""
    first = client.page_size
    after: str | None = None
    seen: set[str] = set()
    where = f"{what}: the {root} query at {client.url}"
    while True:
        data, first = fitting(client, what, query, {**variables, "after": after}, first, root)
        connection = _get(data, root, where)
        yield _nodes(connection, where)
        has_next, cursor = _page_info(connection, where)
        if not has_next:
            return
        if cursor in seen:
            raise SourceDataError(
                f"{where}: the endCursor {cursor[:60]!r} was served before: paging would never "
                "end. The load stopped; nothing of this run was written."
            )
        seen.add(cursor)
        after = cursor


def _changed(
    client: ShopifyClient,
    entity: Entity,
    query: str,
    variables: dict[str, Any],
    root: str,
    state: dict[str, Any],
    window: Window,
) -> Iterator[list[dict[str, Any]]]:
    """The root nodes changed since the stored cursor and before the interval end, page by
    page; the cursor follows what was read."""
    search = _search(cursor_lower_bound(state, window), window.end)
    what = f"{entity.source}.{entity.name}"
    for nodes in pages(client, what, query, {**variables, "query": search}, root):
        _advance(state, nodes, window.end)
        yield nodes


def _test_order(node: dict[str, Any]) -> bool:
    return node.get("test") is True


# --- readers ------------------------------------------------------------------------------


def read_customers(
    client: ShopifyClient, rules: Rules, entity: Entity, state: dict, window: Window
) -> Iterator[Batch]:
    where = f"sales.customers: the customers query at {client.url}"
    origin = client.origin("customers")
    query = customers_query(client.email_field)
    for nodes in _changed(client, entity, query, {}, "customers", state, window):
        rows = [customer_row(n, rules, client.email_field, where) for n in nodes]
        yield rows_to_batch(entity, rows, window.end, origin)


def read_products(
    client: ShopifyClient,
    rules: Rules,
    fx: Reader,
    entity: Entity,
    state: dict,
    window: Window,
) -> Iterator[Batch]:
    where = f"sales.products: the products query at {client.url}"
    origin = client.origin("products")
    to_usd = _UsdPrices(fx, window)
    shop_currency = None
    for nodes in _changed(
        client, entity, PRODUCTS_QUERY, {"variants": VARIANTS_FIRST}, "products", state, window
    ):
        if shop_currency is None and nodes:
            shop = _get(client.query("sales.products", SHOP_QUERY, {}), "shop", where)
            shop_currency = _get(shop, "currencyCode", where)
        rows = []
        for node in nodes:
            connection = _get(node, "variants", where)
            variants = _rest(
                _nodes(connection, where),
                connection,
                where,
                lambda after, node=node: _follow(
                    client,
                    "sales.products",
                    PRODUCT_VARIANTS_QUERY,
                    node,
                    after,
                    "product",
                    "variants",
                    where,
                ),
            )
            rows += product_rows(node, variants, rules, to_usd, shop_currency, where)
        yield rows_to_batch(entity, rows, window.end, origin)


class _UsdPrices:
    """Shop-currency amounts in USD (the contract's products are in USD) at the latest rate on
    or before the run's last day, from the fx rates the adapter reads; read only when a price
    is not in USD."""

    def __init__(self, fx: Reader, window: Window) -> None:
        self._fx, self._window = fx, window
        self._rates: dict[str, Decimal] | None = None

    def __call__(self, value: Any, currency: Any) -> Any:
        if currency == "USD" or not isinstance(value, Decimal):
            return value
        if self._rates is None:
            self._rates = usd_rates(self._fx, self._window)
        rate = self._rates.get(currency)
        if rate is None:
            raise SourceDataError(
                f"sales.products: the store's prices are in {currency}, and the fx rates "
                f"(shopify.fx_rates of the mapping file) have no {currency} rate on or before "
                f"{self._window.last_day}: the contract keeps product prices in USD. Add the "
                "rates, then load again."
            )
        return (value * rate).quantize(CENT, ROUND_HALF_EVEN)


def usd_rates(fx: Reader, window: Window) -> dict[str, Decimal]:
    """Each currency's latest rate to USD on or before the run's last day."""
    latest: dict[str, tuple[date, Decimal]] = {}
    for batch in fx(contract_entity("fx_rates"), {}, window):
        for row in batch.table.select(["rate_date", "currency", "rate_to_usd"]).to_pylist():
            day, currency, rate = row["rate_date"], row["currency"], row["rate_to_usd"]
            if day > window.last_day or rate is None or not math.isfinite(rate):
                continue
            if currency not in latest or day > latest[currency][0]:
                latest[currency] = (day, Decimal(repr(rate)))
    return {currency: rate for currency, (_, rate) in latest.items()}


def _line_items(client: ShopifyClient, node: dict[str, Any], what: str, where: str) -> list[dict]:
    connection = _get(node, "lineItems", where)

    def follow(after: str) -> dict[str, Any]:
        return _follow(
            client, what, ORDER_LINE_ITEMS_QUERY, node, after, "order", "lineItems", where
        )

    return _rest(_nodes(connection, where), connection, where, follow)


def _follow(
    client: ShopifyClient,
    what: str,
    query: str,
    parent: dict[str, Any],
    after: str,
    root: str,
    connection: str,
    where: str,
) -> dict[str, Any]:
    """The next page of a nested connection, asked of its parent (an order, a refund, a
    product) by id."""
    gid = _get(parent, "id", where)
    data, _ = fitting(
        client, what, query, {"id": gid, "after": after}, FOLLOW_UP_FIRST, f"{root} {connection}"
    )
    return _get(_found(data, root, gid, what, client), connection, where)


def _found(data: dict[str, Any], root: str, gid: str, what: str, client: ShopifyClient) -> Any:
    """A follow-up's object; gone (deleted since its page was read) is worth another try."""
    found = data.get(root)
    if not isinstance(found, dict):
        raise SourceUnavailableError(
            f"{what}: {gid} disappeared from the Shopify API at {client.url} while it was read "
            "(deleted meanwhile?); the next try reads the store again."
        )
    return found


def read_orders(
    client: ShopifyClient, rules: Rules, entity: Entity, state: dict, window: Window
) -> Iterator[Batch]:
    what = "sales.orders"
    where = f"{what}: the orders query at {client.url}"
    origin = client.origin("orders")
    skipped = 0
    variables = {"lineItems": LINE_ITEMS_FIRST}
    for nodes in _changed(client, entity, ORDERS_QUERY, variables, "orders", state, window):
        rows, reasons, extras = [], [], {}
        for node in nodes:
            if _test_order(node):
                skipped += 1
                continue
            row, extra, reason = order_row(
                node, _line_items(client, node, what, where), rules, where
            )
            rows.append(row)
            reasons.append(reason)
            extras[row["order_id"]] = extra
        batch = rows_to_batch(entity, rows, window.end, origin, reasons)
        yield _with_extras(batch, entity, extras)
    if skipped:
        log.info(
            "%s: %d test orders (Shopify test: true) skipped: they are not revenue", what, skipped
        )


def read_order_items(
    client: ShopifyClient, entity: Entity, state: dict, window: Window
) -> Iterator[Batch]:
    what = "sales.order_items"
    where = f"{what}: the orders query at {client.url}"
    origin = client.origin("orders (line items)")
    variables = {"lineItems": LINE_ITEMS_FIRST}
    for nodes in _changed(client, entity, ORDERS_QUERY, variables, "orders", state, window):
        rows, extras = [], {}
        for node in nodes:
            if _test_order(node):
                continue
            for row, extra in order_item_rows(node, _line_items(client, node, what, where), where):
                rows.append(row)
                extras[row["order_item_id"]] = extra
        yield _with_extras(rows_to_batch(entity, rows, window.end, origin), entity, extras)


def read_refunds(
    client: ShopifyClient, entity: Entity, state: dict, window: Window
) -> Iterator[Batch]:
    what = "sales.refunds"
    where = f"{what}: the orders query at {client.url}"
    origin = client.origin("orders (refunds)")
    variables = {"refunds": REFUNDS_FIRST, "refundLineItems": REFUND_LINE_ITEMS_FIRST}
    for nodes in _changed(client, entity, REFUNDS_QUERY, variables, "orders", state, window):
        rows, extras = [], {}
        for node in nodes:
            if _test_order(node):
                continue
            refunds = _get(node, "refunds", where)
            if not isinstance(refunds, list):
                raise SourceDataError(
                    f"{where}: an order's refunds are not a list ({_short(refunds)})."
                )
            if len(refunds) >= REFUNDS_FIRST:  # a list, not a connection: ask for all of them
                data = client.query(
                    what,
                    ORDER_ALL_REFUNDS_QUERY,
                    {"id": node["id"], "refundLineItems": REFUND_LINE_ITEMS_FIRST},
                )
                refunds = _get(_found(data, "order", node["id"], what, client), "refunds", where)
            complete = [(r, _refund_lines(client, r, what, where)) for r in refunds]
            for row, extra in refund_rows(node, complete, where):
                rows.append(row)
                extras[row["refund_id"]] = extra
        yield _with_extras(rows_to_batch(entity, rows, window.end, origin), entity, extras)


def _refund_lines(client: ShopifyClient, refund: dict, what: str, where: str) -> list[dict]:
    connection = _get(refund, "refundLineItems", where)

    def follow(after: str) -> dict[str, Any]:
        return _follow(
            client, what, REFUND_LINE_ITEMS_QUERY, refund, after, "refund", "refundLineItems", where
        )

    return _rest(_nodes(connection, where), connection, where, follow)


def read_fx_sheets(
    landing_dir: Any, entity: Entity, state: dict, window: Window
) -> Iterator[Batch]:
    """Every ``fx_rates_<YYYY-MM-DD>.csv`` in the landing folder, read whole each time (a
    corrected rate in a newer file replaces the older one: the newest file wins per day and
    currency)."""
    batches = list(landing.read_sheets(landing_dir, entity, window))
    if not batches:
        return
    table = pa.concat_tables([b.table for b in batches], promote_options="default")
    quarantined = pa.concat_tables([b.quarantined for b in batches])
    newest: dict[tuple, dict[str, Any]] = {}
    for row in sorted(table.to_pylist(), key=lambda r: r["_file_name"]):
        newest[(row["rate_date"], row["currency"])] = row
    table = pa.Table.from_pylist(list(newest.values()), schema=table.schema)
    advance_cursor(state, table, entity.cursor)
    yield Batch(table, quarantined)


def fx_reader(settings: Settings, stack: ExitStack, rules: Rules) -> Reader:
    """The fx rates, which Shopify does not hold: a sheet, or a database's rates table read by
    the SQL reader (table and columns renamed through ``shop_sql.fx_rates``), checked now."""
    if rules.fx_rates == "sheet":
        return lambda e, s, w: read_fx_sheets(settings.landing_dir, e, s, w)
    source = sales.source_tables(settings)["fx_rates"]
    conn = stack.enter_context(sales.engine(settings).connect())
    if source.mapped:
        sales.check_source(conn, contract_entity("fx_rates"), source)
    return lambda e, s, w: sales.read_table(conn, e, s, w, source)


def readers(settings: Settings, stack: ExitStack) -> dict[str, Reader]:
    """Each sales entity's reader. The mapping file is validated and the fx source opened
    first, so that a bad file or setting stops the load before any request."""
    rules = Rules.of(mapping.load(settings.mapping_file).section("shopify"))
    fx = fx_reader(settings, stack, rules)
    client = ShopifyClient(settings)
    return {
        "customers": lambda e, s, w: read_customers(client, rules, e, s, w),
        "products": lambda e, s, w: read_products(client, rules, fx, e, s, w),
        "orders": lambda e, s, w: read_orders(client, rules, e, s, w),
        "order_items": lambda e, s, w: read_order_items(client, e, s, w),
        "refunds": lambda e, s, w: read_refunds(client, e, s, w),
        "fx_rates": fx,
    }
