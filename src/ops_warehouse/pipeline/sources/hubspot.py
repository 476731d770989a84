"""Signups from HubSpot: the contract's signups are the contacts of a HubSpot account, read
through the CRM search API (v3) by their last-modified date (docs/sources.md, "HubSpot").

- one search a page: ``POST /crm/v3/objects/contacts/search`` with the modified date between
  the stored cursor (inclusive) and the run's interval end, sorted by it, at most 200
  contacts a page, the next page ``after`` the last one's ``paging.next.after``;
- HubSpot answers a search with at most 10,000 contacts in all (paging past them is a 400):
  before a search would go past them, the next one starts at the modified date of the last
  contact read, the contacts already read at that instant left out; should more than a
  page's worth share one millisecond (a bulk import), that millisecond is read by contact id;
- searches are paced to the account's search limit (4 a second by default), and a 429 waits
  as HubSpot asks.

What HubSpot does not hold in the contract's terms comes from the mapping file's ``hubspot``
section: the contact property holding the shop's customer id, the UTM properties the
deployment's forms fill, and how HubSpot's original source (``hs_analytics_source`` and its
two drill-downs) becomes ``utm_source``, ``utm_medium`` and ``utm_campaign``. Row-level rules
and quarantine are ``rows_to_batch``'s, as for every source.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests

from ops_warehouse.errors import SourceConfigError, SourceDataError, SourceUnavailableError
from ops_warehouse.pipeline.contracts import Entity
from ops_warehouse.pipeline.sources import mapping
from ops_warehouse.pipeline.sources.arrow_rows import Batch, Origin, rows_to_batch
from ops_warehouse.pipeline.sources.vendor_http import (
    body_or_none,
    error_text,
    json_page,
    retry_after_seconds,
)
from ops_warehouse.pipeline.sources.window import Window, advance_cursor, cursor_lower_bound
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)

# how errors name this reader
WHO = "marketing.signups (HubSpot)"

Reader = Callable[[Entity, dict, Window], Iterator[Batch]]

SEARCH = "/crm/v3/objects/contacts/search"
# HubSpot's largest search page, and the most contacts one search may page through.
SEARCH_LIMIT = 200
RESULT_CAP = 10_000
SCOPE = "crm.objects.contacts.read"
# marks the signups' load state as this adapter's (its cursor is a HubSpot modified date)
DIALECT = "hubspot"

# hs_analytics_source, HubSpot's "Original source" of a contact
SOURCES = (
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "EMAIL_MARKETING",
    "SOCIAL_MEDIA",
    "REFERRALS",
    "OTHER_CAMPAIGNS",
    "DIRECT_TRAFFIC",
    "OFFLINE",
    "PAID_SOCIAL",
    "AI_REFERRALS",
)
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
# a utm value spelled like this is the contact's drill-down property, not a literal
DRILL_DOWNS = {
    "drill_down_1": "hs_analytics_source_data_1",
    "drill_down_2": "hs_analytics_source_data_2",
}
# Original source -> utm values, before the mapping file's entries (which replace a source's
# entry whole). Paid search names its campaign in drill-down 1 but not the search engine;
# paid social names the network in drill-down 1 and the campaign in drill-down 2. A source
# not listed (organic search, direct, referrals, offline…) carries no utm: "organic".
ORIGINAL_SOURCES: dict[str, dict[str, str | None]] = {
    "PAID_SEARCH": {"utm_source": None, "utm_medium": "cpc", "utm_campaign": "drill_down_1"},
    "PAID_SOCIAL": {
        "utm_source": "drill_down_1",
        "utm_medium": "paid_social",
        "utm_campaign": "drill_down_2",
    },
    "EMAIL_MARKETING": {"utm_source": None, "utm_medium": "email", "utm_campaign": "drill_down_1"},
    "OTHER_CAMPAIGNS": {"utm_source": None, "utm_medium": None, "utm_campaign": "drill_down_1"},
}

# --- the mapping file's section ----------------------------------------------------------


def _per_second(value: Any, path: str) -> float:
    number = float(mapping.decimal()(value, path))
    if number <= 0:
        raise mapping.MappingError(f"mapping file: {path} must be more than 0, not {value!r}")
    return number


UTM_VALUES = mapping.Section(
    {
        name: mapping.Key(
            mapping.text,
            doc=f"{name}: a literal, or drill_down_1 / drill_down_2 (the drill-down property)",
        )
        for name in UTM_FIELDS
    },
    doc="the utm values of contacts of one original source",
)

SECTION = mapping.register(
    "hubspot",
    mapping.Section(
        {
            "signups": mapping.Section(
                {
                    "customer_id_property": mapping.Key(
                        mapping.text,
                        required=True,
                        doc="the contact property holding the shop's customer id (e.g. the one "
                        "the shop integration syncs)",
                    ),
                    "modified_property": mapping.Key(
                        mapping.one_of("lastmodifieddate", "hs_lastmodifieddate"),
                        default="lastmodifieddate",
                        doc="the contact property searched and sorted by (the cursor)",
                    ),
                    "utm_properties": mapping.Section(
                        {
                            name: mapping.Key(
                                mapping.text, doc=f"the contact property holding {name}"
                            )
                            for name in UTM_FIELDS
                        },
                        doc="custom contact properties the forms fill with the UTM parameters",
                    ),
                    "original_sources": mapping.Key(
                        mapping.mapping_of(mapping.one_of(*SOURCES), UTM_VALUES),
                        default={},
                        doc="original source -> utm values, replacing the built-in entry",
                    ),
                    "landing_page": mapping.Key(
                        mapping.one_of("path", "url"),
                        default="path",
                        doc="landing_page as the first page's path, or its whole URL",
                    ),
                    "searches_per_second": mapping.Key(
                        _per_second,
                        default=4.0,
                        doc="the account's search rate limit",
                    ),
                }
            ),
        },
        doc="HubSpot as the signup tracker",
    ),
)


# --- values --------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """A HubSpot time: ISO 8601 (``2026-03-01T09:30:00.123Z``, what v3 serves) or epoch
    milliseconds (a number, or digits in a string, as older properties hold); None when
    neither."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        millis = float(value)
    else:
        text = str(value).strip()
        if not text:
            return None
        if text.lstrip("-").isdigit():
            millis = float(text)
        else:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not math.isfinite(millis):
        return None
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    except OverflowError:
        return None


def _iso(value: Any) -> Any:
    """A contract timestamp text of a HubSpot time; unreadable values as served (the row goes
    to quarantine naming them)."""
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment is not None else value


def _millis(moment: datetime) -> int:
    return math.floor(moment.timestamp() * 1000)


def _text(value: Any) -> str | None:
    """A property value: HubSpot serves every value as a string, "" for a cleared one."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _landing_page(url: Any, how: str) -> str | None:
    text = _text(url)
    if text is None or how == "url":
        return text
    parts = urlsplit(text)
    if not parts.scheme:  # already a path
        return text.split("?", 1)[0].split("#", 1)[0] or "/"
    return parts.path or "/"


def _utm(properties: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, str | None]:
    """The contact's utm values: its UTM properties when any is set, else its original
    source through the mapping file's entry or the built-in one (a value named drill_down_1
    or drill_down_2 is that drill-down; a source taken from one is lower-cased)."""
    named = config["utm_properties"]
    own = {f: _text(properties.get(named[f])) if named[f] else None for f in UTM_FIELDS}
    if any(own.values()):
        return own
    source = _text(properties.get("hs_analytics_source"))
    spec = config["original_sources"].get(source) or ORIGINAL_SOURCES.get(source or "")
    out: dict[str, str | None] = dict.fromkeys(UTM_FIELDS)
    if not spec:
        return out
    for name in UTM_FIELDS:
        value = spec.get(name)
        if value in DRILL_DOWNS:
            value = _text(properties.get(DRILL_DOWNS[value]))
            if value is not None and name == "utm_source":
                value = value.lower()
        out[name] = value
    return out


def properties_asked(config: Mapping[str, Any]) -> list[str]:
    """The contact properties a search asks for."""
    names = [
        "email",
        "createdate",
        config["modified_property"],
        config["customer_id_property"],
        "hs_analytics_source",
        *DRILL_DOWNS.values(),
        "hs_analytics_first_url",
        *(p for p in config["utm_properties"].values() if p),
    ]
    return list(dict.fromkeys(names))


# --- HubSpot's contacts -> contract rows (no I/O) ---------------------------------------------


def signup_rows(
    contacts: Sequence[Mapping[str, Any]], config: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    """Contract signups of one search page (``config``: the section's ``signups`` part), and
    how many contacts were leads: a contact without the shop's customer id (the property
    ``hubspot.signups.customer_id_property`` names) never signed up in the shop, so it is no
    signup. Leads are counted and left out, not quarantined: most contacts of a CRM are
    leads, and nothing about them needs fixing."""
    rows: list[dict[str, Any]] = []
    leads = 0
    customer_property = config["customer_id_property"]
    for contact in contacts:
        properties = contact.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        contact_id = _text(contact.get("id")) or _text(properties.get("hs_object_id"))
        customer_id = _text(properties.get(customer_property))
        if customer_id is None:
            leads += 1
            continue
        created = properties.get("createdate") or contact.get("createdAt")
        modified = properties.get(config["modified_property"]) or contact.get("updatedAt")
        rows.append(
            {
                "signup_id": contact_id,
                "customer_id": customer_id,
                "email": _text(properties.get("email")),
                "signed_up_at": _iso(created),
                **_utm(properties, config),
                "landing_page": _landing_page(
                    properties.get("hs_analytics_first_url"), config["landing_page"]
                ),
                "updated_at": _iso(modified),
            }
        )
    return rows, leads


# --- HTTP ------------------------------------------------------------------------------------


class _Pacer:
    """At most ``per_second`` requests in any second (HubSpot's secondly search limit)."""

    def __init__(
        self, per_second: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self.slots = max(1, math.floor(per_second))
        self.span = self.slots / per_second  # seconds the slots cover (1 s for a whole rate)
        self.clock, self.sleep = clock, sleep
        self.sent: deque[float] = deque()
        self.waits: list[float] = []

    def wait(self) -> None:
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.span:
            self.sent.popleft()
        if len(self.sent) >= self.slots:
            pause = self.span - (now - self.sent[0])
            if pause > 0:
                self.waits.append(pause)
                self.sleep(pause)
            self.sent.popleft()
            now = self.clock()
        self.sent.append(now)


class HubSpotClient:
    """POST requests to one HubSpot account with a private app's access token (Bearer).

    Searches are paced to ``searches_per_second``; a 429 waits its ``Retry-After``, or a
    second for HubSpot's secondly limit (a daily limit stops the load as unavailable: the
    next run may succeed), as do 5xx answers, timeouts and dropped connections (with backoff),
    up to ``OPS_HTTP_MAX_ATTEMPTS`` attempts. 401/403 stop at once naming the token setting,
    404 the URL setting, another 4xx and malformed answers the URL: none is retried."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, settings: Settings, per_second: float) -> None:
        token = settings.hubspot_token
        if not token:
            raise SourceConfigError(
                "marketing.signups (HubSpot): OPS_HUBSPOT_TOKEN is not set: set it to the "
                f"access token of a private app of the HubSpot account (scope {SCOPE}) "
                "(the settings have no default token)."
            )
        self.base_url = settings.hubspot_api_url.rstrip("/")
        self.timeout = settings.http_timeout_s
        self.max_attempts = max(1, settings.http_max_attempts)
        self.backoff_max = settings.http_backoff_max_s
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"
        self.pacer = _Pacer(per_second, lambda: self.clock(), lambda s: self.sleep(s))
        self.requests_made = 0
        self.waits: list[float] = []  # waits after a refusal or failure (not the pacing)

    def close(self) -> None:
        self.session.close()

    def post(self, path: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """The JSON object HubSpot answers to ``body`` at ``path``, and the URL (for messages)."""
        url = self.base_url + path
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            self.pacer.wait()
            self.requests_made += 1
            try:
                response = self.session.post(url, json=body, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = exc.__class__.__name__
                wait = self._backoff(attempt)
            else:
                if response.status_code == 200:
                    return json_page(response, url, WHO), url
                self._refuse(response, url)
                problem = f"{response.status_code}: {_message(response)}"
                wait = self._wait_after(response, attempt, url)
            if attempt < self.max_attempts:
                log.warning(
                    "marketing.signups (HubSpot): %s from %s; attempt %d of %d in %.2f s",
                    problem,
                    path,
                    attempt + 1,
                    self.max_attempts,
                    wait,
                )
                self.waits.append(wait)
                self.sleep(wait)
        raise SourceUnavailableError(
            f"marketing.signups (HubSpot): {url} did not answer after {self.max_attempts} "
            f"attempts (last: {problem}): check OPS_HUBSPOT_API_URL and HubSpot's status "
            "page; the task is retried."
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, 0.5 * 2 ** (attempt - 1))

    def _wait_after(self, response: requests.Response, attempt: int, url: str) -> float:
        if response.status_code != 429:
            return self._backoff(attempt)
        body = body_or_none(response)
        policy = body.get("policyName") if isinstance(body, dict) else None
        if policy == "DAILY":
            raise SourceUnavailableError(
                f"marketing.signups (HubSpot): {url} answered 429: the account's daily API "
                f"limit is used up ({_message(response)}); the next run may succeed."
            )
        retry_after = retry_after_seconds(response)
        if retry_after is None:
            retry_after = 1.0 if policy in ("SECONDLY", "TEN_SECONDLY_ROLLING") else None
        if retry_after is None:
            return self._backoff(attempt)
        return min(retry_after, self.backoff_max)

    def _refuse(self, response: requests.Response, url: str) -> None:
        """Raise for the answers that come back the same on every attempt."""
        status = response.status_code
        if status == 401:
            raise SourceConfigError(
                f"marketing.signups (HubSpot): {url} refused the token (401: "
                f"{_message(response)}): check OPS_HUBSPOT_TOKEN (a private app's access "
                "token)."
            )
        if status == 403:
            raise SourceConfigError(
                f"marketing.signups (HubSpot): {url} is forbidden to this token (403: "
                f"{_message(response)}): give the private app the scope {SCOPE}, and check "
                "OPS_HUBSPOT_TOKEN."
            )
        if status == 404:
            raise SourceConfigError(
                f"marketing.signups (HubSpot): {url} does not exist (404): check "
                "OPS_HUBSPOT_API_URL (https://api.hubapi.com)."
            )
        if 400 <= status < 500 and status not in (408, 429):
            raise SourceDataError(
                f"marketing.signups (HubSpot): {url} refused the search ({status}: "
                f"{_message(response)}); the load stopped."
            )


def _message(response: requests.Response) -> str:
    """HubSpot's ``category``, ``errorType``, ``policyName`` and ``message`` of an error."""
    return error_text(response, ("category", "errorType", "policyName", "message"))


# --- searching -------------------------------------------------------------------------------


def _results(page: Mapping[str, Any], url: str) -> tuple[list[Mapping[str, Any]], str | None]:
    """A search page's contacts and its ``paging.next.after`` (None on the last page)."""
    results = page.get("results")
    if not isinstance(results, list) or not all(isinstance(r, Mapping) for r in results):
        raise SourceDataError(
            f"marketing.signups (HubSpot): {url} is not a search page: 'results' is "
            f"{'missing' if results is None else 'not a list of objects'} (keys served: "
            f"{', '.join(sorted(page)) or 'none'})."
        )
    paging = page.get("paging")
    following = paging.get("next") if isinstance(paging, Mapping) else None
    if following is None:
        return results, None
    after = following.get("after") if isinstance(following, Mapping) else None
    if not isinstance(after, str | int) or isinstance(after, bool) or str(after) == "":
        raise SourceDataError(
            f"marketing.signups (HubSpot): {url} has 'paging.next' without an 'after' "
            f"({following!r}): paging cannot go on."
        )
    return results, str(after)


class ContactSearch:
    """The contacts modified in ``[lower, upper)`` milliseconds, in searches that never page
    past HubSpot's 10,000 results (see the module's docstring)."""

    def __init__(self, client: HubSpotClient, config: Mapping[str, Any], page_size: int) -> None:
        self.client = client
        self.modified = config["modified_property"]
        self.properties = properties_asked(config)
        self.limit = max(1, min(page_size, SEARCH_LIMIT))
        self.searches = 0  # how many searches (not pages) a read took

    def pages(self, lower: int | None, upper: int) -> Iterator[tuple[list[Mapping[str, Any]], str]]:
        """Each page's contacts not served before in this read, and its URL."""
        start = lower
        served_at_start: set[str] = set()  # ids already served whose modified time is start
        while True:
            filters = [(self.modified, "LT", upper)]
            if start is not None:
                filters.insert(0, (self.modified, "GTE", start))
            last: list[Any] = [None, set()]  # newest modified ms read, ids read at it
            capped = yield from self._search(filters, self.modified, served_at_start, last)
            if not capped:
                return
            newest, ids_at_newest = last
            if newest is None:
                raise SourceDataError(
                    "marketing.signups (HubSpot): a search holding more than "
                    f"{RESULT_CAP:,} contacts served contacts without {self.modified}: the "
                    "read cannot move on."
                )
            if newest == start:
                # more contacts than a search may page through share one millisecond
                instant = [(self.modified, "GTE", start), (self.modified, "LT", start + 1)]
                yield from self._by_id(instant, served_at_start | ids_at_newest)
                start, served_at_start = start + 1, set()
            else:
                start, served_at_start = newest, ids_at_newest

    def _by_id(
        self, filters: list[tuple[str, str, Any]], served: set[str]
    ) -> Iterator[tuple[list[Mapping[str, Any]], str]]:
        """Every contact matching ``filters``, by ascending id, in capped searches."""
        after_id: int | None = None
        while True:
            extra = [] if after_id is None else [("hs_object_id", "GT", after_id)]
            last: list[Any] = [None, set()]
            capped = yield from self._search(filters + extra, "hs_object_id", served, last)
            if not capped:
                return
            if last[0] is None or (after_id is not None and last[0] <= after_id):
                raise SourceDataError(
                    "marketing.signups (HubSpot): a search by contact id served no readable "
                    "ids past the last one read: the read cannot move on."
                )
            after_id = last[0]

    def _search(
        self,
        filters: list[tuple[str, str, Any]],
        sort: str,
        served: set[str],
        last: list[Any],
    ) -> Iterator[tuple[list[Mapping[str, Any]], str]]:
        """One search, paged until its end (returns False) or until the next page would go
        past HubSpot's cap (returns True). ``last`` gets the greatest ``sort`` value read (ms
        or id) and the ids read at it."""
        self.searches += 1
        body: dict[str, Any] = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": name, "operator": op, "value": str(value)}
                        for name, op, value in filters
                    ]
                }
            ],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": self.properties,
            "limit": self.limit,
        }
        read = 0
        asked: set[str] = set()
        while True:
            page, url = self.client.post(SEARCH, body)
            contacts, after = _results(page, url)
            read += len(contacts)
            fresh = []
            for contact in contacts:
                key = self._sort_key(contact, sort)
                contact_id = str(contact.get("id"))
                if key is not None and (last[0] is None or key > last[0]):
                    last[0], last[1] = key, set()
                if key is not None and key == last[0]:
                    last[1].add(contact_id)
                if contact_id not in served:
                    fresh.append(contact)
            yield fresh, url
            if after is None:
                return False
            if after in asked:
                raise SourceDataError(
                    f"marketing.signups (HubSpot): {url} links to a page served before "
                    f"(after {after!r}): paging cannot go on."
                )
            asked.add(after)
            if read + self.limit > RESULT_CAP or _offset(after) + self.limit > RESULT_CAP:
                total = page.get("total")
                log.info(
                    "marketing.signups (HubSpot): a search holds %s contacts, more than the "
                    "%d one search may page through: the next search starts where this one "
                    "ended",
                    total,
                    RESULT_CAP,
                )
                return True
            body = {**body, "after": after}

    def _sort_key(self, contact: Mapping[str, Any], sort: str) -> int | None:
        properties = contact.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        if sort == "hs_object_id":
            try:
                return int(properties.get("hs_object_id") or contact.get("id"))
            except (TypeError, ValueError):
                return None
        moment = parse_time(properties.get(sort) or contact.get("updatedAt"))
        return _millis(moment) if moment is not None else None


def _offset(after: str) -> int:
    """The position ``after`` stands for (HubSpot's is the offset; 0 when it is opaque)."""
    return int(after) if after.isdigit() else 0


# --- one load's reader ---------------------------------------------------------------------------


def read_signups(
    search: ContactSearch, config: Mapping[str, Any], entity: Entity, state: dict, window: Window
) -> Iterator[Batch]:
    """Contacts modified from the stored cursor (inclusive) to the interval end, as signups;
    the cursor is the newest ``updated_at`` loaded. A cursor stored by another tracker (the
    generic dialect's, before the switch to HubSpot) is not HubSpot's: the first HubSpot load
    reads every contact."""
    if state.get("dialect") != DIALECT:
        state.pop("cursor", None)
        state["dialect"] = DIALECT
    lower = cursor_lower_bound(state, window)
    lower_ms = _millis(lower) if lower is not None else None
    leads = 0
    for contacts, url in search.pages(lower_ms, _millis(window.end)):
        rows, page_leads = signup_rows(contacts, config)
        leads += page_leads
        batch = rows_to_batch(entity, rows, window.end, Origin(f"POST {url}"))
        advance_cursor(state, batch.table, "updated_at")
        yield batch
    if leads:
        log.info(
            "hubspot: %d contact(s) without %s left out: leads, not shop signups",
            leads,
            config["customer_id_property"],
        )


def readers(settings: Settings, stack: ExitStack) -> dict[str, Reader]:
    """The signups' reader. The mapping file is validated and the token checked here, before
    any request."""
    config = mapping.load(settings.mapping_file).section("hubspot")["signups"]
    client = HubSpotClient(settings, config["searches_per_second"])
    stack.callback(client.close)
    search = ContactSearch(client, config, settings.page_size)
    return {"signups": lambda e, s, w: read_signups(search, config, e, s, w)}
