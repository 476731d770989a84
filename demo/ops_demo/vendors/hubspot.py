"""The demo world's signups as a HubSpot account's contacts: the CRM search API (v3) the
HubSpot dialect of the signups loader reads (docs/sources.md, "HubSpot").

Mounted by ``ops_demo.server`` at ``POST /crm/v3/objects/contacts/search``. Each of the
world's signups (``api/signups.parquet`` in the world directory, re-read when it changes) is a
contact:

- ``id`` (and ``hs_object_id``) is ``CONTACT_BASE`` + the signup's number, ``email``,
  ``createdate`` (the signup time) and ``lastmodifieddate`` / ``hs_lastmodifieddate`` (its
  last change) as HubSpot writes them (ISO 8601, milliseconds, ``Z``); ``createdAt`` and
  ``updatedAt`` beside the properties;
- ``shop_customer_id``, a custom property the shop integration fills: the world's customer id;
- the original source from the signup's utm values: ``cpc`` is ``PAID_SEARCH`` (drill-down 1
  the campaign), ``paid_social`` is ``PAID_SOCIAL`` (drill-down 1 the network as HubSpot
  spells it, ``Facebook``, drill-down 2 the campaign), any other utm ``OTHER_CAMPAIGNS``,
  none ``ORGANIC_SEARCH`` or ``DIRECT_TRAFFIC`` (alternately, by number);
- ``hs_analytics_first_url``: the landing page on the shop's site, with the utm parameters
  (and a ``gclid`` for paid search) in its query; none while the tracker lost it.

A search is answered as HubSpot does: ``filterGroups`` (OR of groups, AND of filters;
``EQ``, ``NEQ``, ``LT``, ``LTE``, ``GT``, ``GTE``, ``HAS_PROPERTY``, ``NOT_HAS_PROPERTY``; a
date as epoch milliseconds or ISO text), one of ``sorts`` (ties by id), the ``properties``
asked for (unknown ones left out; HubSpot's default properties when none is asked),
``limit`` 1 to 200, and ``after`` the offset of the next page (``paging.next.after``, the
last page has no ``paging``); ``total`` counts every match. A search paging past
``result_cap`` (10,000) contacts is refused with 400 ``VALIDATION_ERROR``, a wrong token 401
``INVALID_AUTHENTICATION``, a token without the contacts scope (config ``missing_scope``) 403
``MISSING_SCOPES``, more than ``searches_per_second`` searches in a second (off unless set)
429 with HubSpot's ``SECONDLY`` body.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pyarrow.parquet as pq

from ops_demo import DEMO_TOKENS

PATH = "/crm/v3/objects/contacts/search"
DEMO_TOKEN = DEMO_TOKENS["OPS_HUBSPOT_TOKEN"]
DEFAULT_CONFIG: dict[str, Any] = {
    "searches_per_second": None,
    "result_cap": 10_000,
    "missing_scope": False,
}
MAX_LIMIT = 200
CONTACT_BASE = 75_000_000_000
SITE = "https://shop.example.com"
CUSTOMER_PROPERTY = "shop_customer_id"
DEFAULT_PROPERTIES = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
# the network of a paid_social utm_source, as HubSpot's drill-down names it
NETWORKS = {
    "facebook": "Facebook",
    "instagram": "Instagram",
    "tiktok": "TikTok",
    "linkedin": "LinkedIn",
}
DATE_PROPERTIES = frozenset({"createdate", "lastmodifieddate", "hs_lastmodifieddate"})
NUMBER_PROPERTIES = frozenset({"hs_object_id"})
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "HAS_PROPERTY", "NOT_HAS_PROPERTY")
MAX_GROUPS, MAX_FILTERS = 5, 6


def _stamp(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def contact_id(signup_id: str) -> str:
    """The contact id standing for a world signup id: ``S00000042`` -> ``75000000042``."""
    return str(CONTACT_BASE + int(signup_id[1:]))


def original_source(row: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """(hs_analytics_source, drill-down 1, drill-down 2) of a world signup."""
    source, medium, campaign = row["utm_source"], row["utm_medium"], row["utm_campaign"]
    if medium == "cpc":
        return "PAID_SEARCH", campaign, None
    if medium == "paid_social":
        network = NETWORKS.get(source or "", (source or "").capitalize() or None)
        return "PAID_SOCIAL", network, campaign
    if source or medium or campaign:
        return "OTHER_CAMPAIGNS", campaign, source
    if int(row["signup_id"][1:]) % 2:
        return "DIRECT_TRAFFIC", None, None
    return "ORGANIC_SEARCH", None, "www.google.com"


def first_url(row: Mapping[str, Any]) -> str | None:
    page = row["landing_page"]
    if page is None:
        return None
    query = {k: row[k] for k in ("utm_source", "utm_medium", "utm_campaign") if row[k]}
    if row["utm_medium"] == "cpc":
        query["gclid"] = f"demo{int(row['signup_id'][1:]):08d}"
    return SITE + page + (f"?{urlencode(query)}" if query else "")


@dataclass
class _Contact:
    id: int
    properties: dict[str, Any]
    values: dict[str, Any]  # property -> comparable value (ms for dates, int for ids)


def contact(row: Mapping[str, Any]) -> _Contact:
    """A world signup (a row of ``api/signups.parquet``) as a HubSpot contact."""
    source, drill_1, drill_2 = original_source(row)
    number = contact_id(row["signup_id"])
    created, modified = row["signed_up_at"], row["updated_at"]
    properties = {
        "hs_object_id": number,
        "email": row["email"],
        "firstname": None,
        "lastname": None,
        "createdate": _stamp(created),
        "lastmodifieddate": _stamp(modified),
        "hs_lastmodifieddate": _stamp(modified),
        CUSTOMER_PROPERTY: row["customer_id"],
        "hs_analytics_source": source,
        "hs_analytics_source_data_1": drill_1,
        "hs_analytics_source_data_2": drill_2,
        "hs_analytics_first_url": first_url(row),
        "lifecyclestage": "customer",
    }
    values: dict[str, Any] = {k: v for k, v in properties.items() if v is not None}
    values.update(
        hs_object_id=int(number),
        createdate=_millis(created),
        lastmodifieddate=_millis(modified),
        hs_lastmodifieddate=_millis(modified),
    )
    return _Contact(int(number), properties, values)


class SearchError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status, self.body = status, body


def _error(status: int, category: str, message: str, **extra: Any) -> SearchError:
    return SearchError(
        status,
        {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
            **extra,
        },
    )


def _invalid(message: str) -> SearchError:
    return _error(400, "VALIDATION_ERROR", message)


def _filter_value(name: str, value: Any) -> Any:
    if name in DATE_PROPERTIES:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(f"{value!r} is not a valid date for the property {name}") from None
        return _millis(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    if name in NUMBER_PROPERTIES:
        try:
            return int(str(value))
        except ValueError:
            raise _invalid(f"{value!r} is not a valid number for the property {name}") from None
    return str(value)


def _predicate(spec: Any, known: frozenset[str]) -> Callable[[_Contact], bool]:
    if not isinstance(spec, Mapping):
        raise _invalid("a filter must be an object")
    name, operator = spec.get("propertyName"), spec.get("operator")
    if name not in known:
        raise _invalid(f"There was a problem with the request: unknown property {name!r}")
    if operator not in OPERATORS:
        raise _invalid(f"{operator!r} is not a valid operator")
    if operator == "HAS_PROPERTY":
        return lambda c: name in c.values
    if operator == "NOT_HAS_PROPERTY":
        return lambda c: name not in c.values
    if "value" not in spec:
        raise _invalid(f"the filter on {name} with {operator} needs a value")
    value = _filter_value(name, spec["value"])
    compare = {
        "EQ": lambda a: a == value,
        "NEQ": lambda a: a != value,
        "LT": lambda a: a < value,
        "LTE": lambda a: a <= value,
        "GT": lambda a: a > value,
        "GTE": lambda a: a >= value,
    }[operator]
    return lambda c: name in c.values and compare(c.values[name])


def search(
    contacts: list[_Contact],
    request: Any,
    result_cap: int,
    cache: dict[str, list[_Contact]] | None = None,
) -> dict[str, Any]:
    """HubSpot's answer to a search ``request`` (the JSON body) over ``contacts``; raises
    SearchError with HubSpot's status and body. ``cache`` keeps each search's sorted matches
    for its next pages (cleared by the caller when the contacts change)."""
    if not isinstance(request, Mapping):
        raise _invalid("Invalid input JSON: the body must be an object")
    known = frozenset(contacts[0].properties) if contacts else frozenset(DATE_PROPERTIES)
    known = known | DATE_PROPERTIES | {"hs_object_id", "email", CUSTOMER_PROPERTY}
    groups = request.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise _invalid(f"filterGroups must be a list of at most {MAX_GROUPS} groups")
    tests = []
    for group in groups:
        filters = group.get("filters") if isinstance(group, Mapping) else None
        if not isinstance(filters, list) or len(filters) > MAX_FILTERS:
            raise _invalid(f"each filter group must hold a list of at most {MAX_FILTERS} filters")
        tests.append([_predicate(f, known) for f in filters])
    limit = request.get("limit", 10)
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise _invalid(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
    after = request.get("after", "0")
    if not str(after).isdigit():
        raise _invalid(f"after must be the offset of a page, not {after!r}")
    offset = int(after)
    if offset + limit > result_cap:
        raise _invalid(
            f"The search API can page through at most {result_cap} results; the request asked "
            f"for results {offset} to {offset + limit}. Narrow the search with filters."
        )
    sorts = request.get("sorts") or []
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise _invalid("sorts may hold one sort")
    key = json.dumps([groups, sorts], sort_keys=True, default=str)
    if cache is not None and key in cache:
        matches = cache[key]
    else:
        matches = _matches(contacts, tests, sorts, known)
        if cache is not None:
            if len(cache) > 64:
                cache.clear()
            cache[key] = matches
    asked = request.get("properties") or list(DEFAULT_PROPERTIES)
    if not isinstance(asked, list):
        raise _invalid("properties must be a list of property names")
    page = matches[offset : offset + limit]
    answer: dict[str, Any] = {
        "total": len(matches),
        "results": [
            {
                "id": str(c.id),
                "properties": {p: c.properties[p] for p in asked if p in c.properties},
                "createdAt": c.properties["createdate"],
                "updatedAt": c.properties["lastmodifieddate"],
                "archived": False,
            }
            for c in page
        ],
    }
    if offset + limit < len(matches):
        following = str(offset + limit)
        answer["paging"] = {"next": {"after": following, "link": f"?after={following}"}}
    return answer


def _matches(
    contacts: list[_Contact],
    tests: list[list[Callable[[_Contact], bool]]],
    sorts: list[Any],
    known: frozenset[str],
) -> list[_Contact]:
    """The contacts a search matches, in its order (ties, and no sort, by id)."""
    matches = [c for c in contacts if not tests or any(all(t(c) for t in g) for g in tests)]
    matches.sort(key=lambda c: c.id)
    if not sorts:
        return matches
    sort = sorts[0] if isinstance(sorts[0], Mapping) else {}
    name = sort.get("propertyName")
    if name not in known:
        raise _invalid(f"cannot sort by the unknown property {name!r}")
    descending = sort.get("direction", "ASCENDING") == "DESCENDING"
    present = [c for c in matches if name in c.values]
    absent = [c for c in matches if name not in c.values]
    present.sort(key=lambda c: c.values[name], reverse=descending)
    return present + absent


@dataclass
class Answer:
    status: int
    body: str
    content_type: str = "application/json;charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0  # contacts served


class HubSpotAccount:
    """The demo world's signups behind HubSpot's contact search: authentication, the secondly
    limit per token, and the answers."""

    name = "hubspot"

    def __init__(self, world_dir: Path, token: str) -> None:
        self.path = Path(world_dir) / "api" / "signups.parquet"
        self.token = token
        self._contacts: tuple[Any, list[_Contact]] | None = None
        self._searches: dict[str, list[_Contact]] = {}  # a search's matches, for its pages
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}
        self.clock = time.monotonic

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()

    def contacts(self) -> list[_Contact]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"the demo world has no signups at {self.path}") from None
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._contacts
        if cached is not None and cached[0] == signature:
            return cached[1]
        with self._lock:
            if self._contacts is None or self._contacts[0] != signature:
                rows = pq.read_table(self.path).to_pylist()
                self._contacts = (signature, [contact(r) for r in rows])
                self._searches = {}
            return self._contacts[1]

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
        if urlsplit(target).path.rstrip("/") != PATH:
            return _answer(_error(404, "OBJECT_NOT_FOUND", f"no endpoint {target}"))
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if token != self.token:
            return _answer(
                _error(
                    401,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found: send a private app's access token "
                    "as a Bearer token.",
                )
            )
        if config["missing_scope"]:
            return _answer(
                _error(
                    403,
                    "MISSING_SCOPES",
                    "This app hasn't been granted all required scopes to make this call.",
                    errors=[
                        {
                            "message": "One or more of the following scopes are required.",
                            "context": {"requiredGranularScopes": ["crm.objects.contacts.read"]},
                        }
                    ],
                )
            )
        if fault == "429" or self._over_limit(token, config["searches_per_second"]):
            return _secondly_limit()
        if fault is not None:
            if fault == "500":
                return _answer(_error(500, "INTERNAL_ERROR", "internal error"))
            page = "<html><body><h1>Bad gateway</h1></body></html>"
            return Answer(int(fault), page, content_type="text/html; charset=utf-8")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return _answer(_invalid("Invalid input JSON on line 1"))
        try:
            contacts = self.contacts()
        except (OSError, ValueError) as exc:
            return _answer(_error(503, "SERVICE_UNAVAILABLE", str(exc)))
        try:
            with self._lock:
                searches = self._searches
            result = search(contacts, request, config["result_cap"], searches)
        except SearchError as exc:
            return _answer(exc)
        return Answer(200, json.dumps(result, separators=(",", ":")), rows=len(result["results"]))

    def _over_limit(self, token: str, per_second: int | None) -> bool:
        """Whether this search is one more than ``per_second`` in the last second."""
        if per_second is None:
            return False
        now = self.clock()
        with self._lock:
            sent = self._sent.setdefault(token, deque())
            while sent and now - sent[0] >= 1.0:
                sent.popleft()
            if len(sent) >= per_second:
                return True
            sent.append(now)
            return False


def _answer(error: SearchError) -> Answer:
    return Answer(error.status, json.dumps(error.body))


def _secondly_limit() -> Answer:
    body = {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": "SECONDLY",
        "groupName": "publicapi:search",
    }
    return Answer(429, json.dumps(body))


def validate_config(value: Any) -> dict[str, Any]:
    """The ``hubspot`` key of the demo server's configuration, with defaults filled in;
    raises ValueError naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("hubspot must be an object")
    unknown = sorted(set(value) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"hubspot: unknown keys {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    out = {**DEFAULT_CONFIG, **value}
    rate = out["searches_per_second"]
    if rate is not None and (type(rate) is not int or rate < 1):
        raise ValueError("hubspot.searches_per_second must be a whole number >= 1 or null")
    cap = out["result_cap"]
    if type(cap) is not int or cap < 1:
        raise ValueError("hubspot.result_cap must be a whole number >= 1")
    if not isinstance(out["missing_scope"], bool):
        raise ValueError("hubspot.missing_scope must be true or false")
    return out
