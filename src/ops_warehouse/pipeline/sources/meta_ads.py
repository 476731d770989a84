"""Marketing from Meta Ads (the Marketing API of the Graph API): the contract's
``ad_performance`` and ``campaigns`` of the ``meta_ads`` channel (docs/sources.md, "Meta Ads").

- ad performance: each ad account's insights at campaign level, one row per campaign and
  day (``time_increment=1``, days of the account's time zone) over a window that re-reads the
  last ``OPS_AD_LOOKBACK_DAYS`` days; spend and counts are served as text, conversions are the
  sum of the ``actions`` whose type the mapping file names;
- campaigns: each account's campaigns, archived ones included, with objective (the mapping
  file's table), status, dates, daily budget (minor units) and last change.

Meta throttles with error codes in an HTTP 400 body (4, 17, 32, 613, 80000-80014), not with
429, and tells how long to wait in its usage headers; both are honoured as a 429 would be.
The ad accounts are the mapping file's ``meta_ads.ad_account_ids``; the access token (a
system user's) comes from ``OPS_META_ACCESS_TOKEN``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from ops_warehouse.errors import SourceConfigError, SourceDataError, SourceUnavailableError
from ops_warehouse.pipeline.contracts import Entity
from ops_warehouse.pipeline.contracts import entity as contract_entity
from ops_warehouse.pipeline.sources import mapping
from ops_warehouse.pipeline.sources.ad_rows import (
    BATCH_ROWS,
    Summer,
    amount,
    campaign_id,
    count,
    currency_reason,
    id_format,
)
from ops_warehouse.pipeline.sources.arrow_rows import Batch, Origin, rows_to_batch
from ops_warehouse.pipeline.sources.marketing import ad_window
from ops_warehouse.pipeline.sources.vendor_http import body_or_none, json_page
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)

Reader = Callable[[Entity, dict, Window], Iterator[Batch]]

PLATFORM = "meta_ads"
INSIGHTS_FIELDS = (
    "campaign_id,campaign_name,spend,impressions,clicks,actions,date_start,date_stop,"
    "account_currency"
)
CAMPAIGN_FIELDS = (
    "id,name,objective,status,effective_status,daily_budget,start_time,stop_time,updated_time"
)
# archived campaigns are left out of the campaigns edge unless asked for
CAMPAIGN_STATES = '["ACTIVE","PAUSED","ARCHIVED","IN_PROCESS","WITH_ISSUES"]'
# Insights keep 37 months: an initial load asks for no earlier day.
INSIGHTS_MONTHS = 37
# Meta's largest page of insights and of campaigns.
PAGE_MAX = 500

# error codes that mean "too many calls, wait" (Graph API rate limiting, ads BUC limits)
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
# error codes of a passing fault on Meta's side
TRANSIENT_CODES = frozenset({1, 2})
# error codes of a token or permission problem
TOKEN_CODES = frozenset({102, 190})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
# "object does not exist, cannot be loaded due to missing permissions": a wrong account id
MISSING_OBJECT = (100, 33)
USAGE_HEADERS = ("x-business-use-case-usage", "x-ad-account-usage", "x-app-usage")
# a usage share (percent) from which the next call waits
FULL_PCT = 100

OBJECTIVES: tuple[str, ...] = contract_entity("campaigns").allowed["objective"]
# Meta's awareness objectives are brand campaigns before the mapping file's additions
BUILT_IN_OBJECTIVES = {
    "OUTCOME_AWARENESS": "brand",
    "BRAND_AWARENESS": "brand",
    "REACH": "brand",
}
STATUSES = {"ACTIVE": "active", "PAUSED": "paused", "ARCHIVED": "ended", "DELETED": "ended"}
# digits after the decimal point of currencies Meta counts in whole units (minor units = units)
WHOLE_UNIT_CURRENCIES = frozenset({"JPY", "KRW", "CLP", "COP", "HUF", "ISK", "PYG", "TWD", "VND"})


def _account_id(value: Any, path: str) -> str:
    """An ad account id, with or without ``act_``."""
    text = str(value).strip().removeprefix("act_") if not isinstance(value, bool) else ""
    if text.isdigit():
        return text
    raise mapping.MappingError(
        f"mapping file: {path} must be a Meta ad account id (digits, with or without act_), "
        f"not {value!r}"
    )


SECTION = mapping.register(
    PLATFORM,
    mapping.Section(
        {
            "ad_account_ids": mapping.Key(
                mapping.list_of(_account_id),
                doc="the ad accounts whose campaigns are read",
            ),
            "conversion_action_types": mapping.Key(
                mapping.list_of(mapping.text),
                doc="action types counted as conversions (e.g. "
                "offsite_conversion.fb_pixel_purchase); name one per conversion, not a type "
                "and its alias",
            ),
            "campaign_id_format": mapping.Key(
                id_format,
                default="meta_ads-{id}",
                doc="the contract's campaign id of campaign {id}: unique across platforms, "
                "and the utm_campaign the ads' URL parameters give signups",
            ),
            "objectives": mapping.Key(
                mapping.mapping_of(mapping.text, mapping.one_of(*OBJECTIVES)),
                default={},
                doc="Meta objective (OUTCOME_SALES, ...) -> objective, added to the built-in "
                "table (awareness objectives: brand)",
            ),
            "objective_default": mapping.Key(
                mapping.one_of(*OBJECTIVES),
                default="acquisition",
                doc="objective of a Meta objective no table names",
            ),
        },
        doc="Meta Ads as an ad platform of the marketing source",
    ),
)


# --- Meta's rows -> contract rows (no I/O) ---------------------------------------------------


def _served(parsed: Any, served: Any) -> Any:
    """A parsed value, or the value as served when it is none (its row is quarantined)."""
    return served if parsed is None else parsed


def conversions(actions: Any, types: frozenset[str]) -> Any:
    """The sum of the actions of the named types; the key is absent when there were none."""
    if actions is None:
        return Decimal(0)
    if not isinstance(actions, list):
        return actions
    total = Decimal(0)
    for action in actions:
        if isinstance(action, Mapping) and action.get("action_type") in types:
            value = amount(action.get("value"))
            if value is None:
                return action.get("value")
            total += value
    return total


def performance_rows(
    data: list[Mapping[str, Any]], config: Mapping[str, Any], account: str, currency: Any
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Contract rows of one account's insights, summed by campaign and day, and each row's
    reason to quarantine it."""
    fmt = config["campaign_id_format"]
    types = frozenset(config["conversion_action_types"])
    summed = Summer()
    split_days: set[tuple[Any, Any]] = set()
    for item in data:
        day, stop = item.get("date_start"), item.get("date_stop")
        row = {
            "date": day,
            "channel": PLATFORM,
            "campaign_id": campaign_id(fmt, item.get("campaign_id")),
            "currency": item.get("account_currency") or currency,
        }
        if stop != day:
            split_days.add((row["campaign_id"], day))
        summed.add(
            row,
            {
                "impressions": _served(
                    count(item.get("impressions", "0")), item.get("impressions")
                ),
                "clicks": _served(count(item.get("clicks", "0")), item.get("clicks")),
                "spend": _served(amount(item.get("spend", "0")), item.get("spend")),
                "platform_conversions": conversions(item.get("actions"), types),
            },
        )
    rows = list(summed.rows.values())
    key = f"{PLATFORM}.ad_account_ids"
    reasons: list[str | None] = []
    for r in rows:
        reason = currency_reason("Meta Ads", f"act_{account}", key, r["currency"])
        if (r["campaign_id"], r["date"]) in split_days:
            reason = reason or (
                f"the insights row spans more than one day (date_start {r['date']!r} differs "
                "from date_stop): it was not asked by day (time_increment=1)"
            )
        reasons.append(reason)
    return rows, reasons


def _local_date(value: Any) -> Any:
    """The day of a Graph date-time (``2026-03-01T10:00:00-0800``) as the account sees it."""
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            return value
    return value


def _utc(value: Any) -> Any:
    """A Graph date-time (``2026-03-01T10:00:00-0800``) in UTC; as served when unreadable."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return value
    return moment.astimezone(UTC).isoformat()


def campaign_rows(
    data: list[Mapping[str, Any]], config: Mapping[str, Any], account: str, currency: Any
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Contract rows of one account's campaigns, and each row's reason to quarantine it."""
    fmt = config["campaign_id_format"]
    objectives = {**BUILT_IN_OBJECTIVES, **config["objectives"]}
    scale = 0 if currency in WHOLE_UNIT_CURRENCIES else 2
    rows = []
    for item in data:
        budget = item.get("daily_budget")
        status = item.get("status")
        rows.append(
            {
                "campaign_id": campaign_id(fmt, item.get("id")),
                "campaign_name": item.get("name"),
                "channel": PLATFORM,
                "objective": objectives.get(item.get("objective"), config["objective_default"]),
                "status": STATUSES.get(status, status),
                "start_date": _local_date(item.get("start_time")),
                "end_date": _local_date(item.get("stop_time")),
                # a lifetime budget, or budgets set on the ad sets: no daily budget of its own
                "daily_budget": _served(amount(budget if budget is not None else 0, scale), budget),
                "currency": currency,
                "updated_at": _utc(item.get("updated_time")),
            }
        )
    key = f"{PLATFORM}.ad_account_ids"
    return rows, [currency_reason("Meta Ads", f"act_{account}", key, currency) for _ in rows]


# --- the HTTP client ---------------------------------------------------------------------------


def _usage_wait(headers: Mapping[str, str]) -> tuple[float, bool]:
    """What Meta's usage headers say: seconds until access is regained (0: none given) and
    whether some usage is full. Their values are JSON inside the header text."""
    wait, full = 0.0, False
    for name in USAGE_HEADERS:
        raw = headers.get(name)
        if not raw:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        entries: list[Any] = []
        if isinstance(value, Mapping) and name == "x-business-use-case-usage":
            for listed in value.values():
                entries += listed if isinstance(listed, list) else []
        else:
            entries.append(value)
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            minutes = _number(entry.get("estimated_time_to_regain_access"))
            seconds = _number(entry.get("reset_time_duration"))
            wait = max(wait, minutes * 60, seconds)
            shares = (entry.get(k) for k in ("call_count", "total_cputime", "total_time"))
            pcts = [_number(s) for s in shares] + [_number(entry.get("acc_id_util_pct"))]
            full = full or any(p >= FULL_PCT for p in pcts)
    return wait, full


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


def _error(body: Any) -> tuple[int | None, int | None, str]:
    """(code, subcode, message with the trace id) of a Graph API error body."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None, None, ""
    code, subcode = error.get("code"), error.get("error_subcode")
    message = " ".join(str(error.get("message") or "").split())[:300]
    if error.get("fbtrace_id"):
        message += f" (fbtrace_id {error['fbtrace_id']})"
    return (
        code if isinstance(code, int) else None,
        subcode if isinstance(subcode, int) else None,
        message,
    )


class MetaClient:
    """GET requests to the Graph API, retried the way Meta asks.

    A throttling error code waits what the usage headers say (``estimated_time_to_regain_access``,
    ``reset_time_duration``), else backs off, when that is at most ``OPS_HTTP_BACKOFF_MAX_S``;
    a longer wait stops the run at once as transient, naming it. A successful answer whose
    usage headers say a limit is reached makes the next request wait the same way. 5xx
    answers, codes 1 and 2, timeouts and dropped connections back off, up to
    ``OPS_HTTP_MAX_ATTEMPTS`` attempts. A refused token (190) or permission (10, 200-299)
    stops at once naming the setting or mapping key; another 4xx stops naming the URL."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(self, settings: Settings) -> None:
        if not settings.meta_access_token:
            raise SourceConfigError(
                "marketing (Meta Ads): OPS_META_ACCESS_TOKEN is not set: set it to an access "
                "token with ads_read on the ad accounts (a system user's; the settings have no "
                "default token)."
            )
        self.base_url = f"{settings.meta_api_url.rstrip('/')}/{settings.meta_api_version}"
        self.timeout = settings.http_timeout_s
        self.max_attempts = max(1, settings.http_max_attempts)
        self.backoff_max = settings.http_backoff_max_s
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {settings.meta_access_token}"
        self.requests_made = 0
        self.waits: list[float] = []
        self._pause = 0.0  # asked for by the last answer's usage headers

    def close(self) -> None:
        self.session.close()

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        return requests.Request("GET", self.base_url + path, params=params).prepare().url

    def get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        url = self.url(path, params)
        if self._pause:
            self._wait(self._pause, "usage limit reached", url, 0)
            self._pause = 0.0
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            self.requests_made += 1
            try:
                response = self.session.get(url, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem, wait = exc.__class__.__name__, self._backoff(attempt)
            else:
                usage_wait, full = _usage_wait(response.headers)
                if response.status_code == 200:
                    if full or usage_wait:
                        self._pause = self._bounded(usage_wait or self._backoff(1), url, "")
                    return self._json(response, url)
                code, subcode, message = _error(body_or_none(response))
                problem = f"{response.status_code} (#{code}) {message}"
                self._refuse(response, url, code, subcode, message)
                wait = self._backoff(attempt)
                if code in THROTTLE_CODES or response.status_code == 429:
                    wait = self._bounded(usage_wait or wait, url, message)
            if attempt < self.max_attempts:
                self._wait(wait, problem, url, attempt)
        raise SourceUnavailableError(
            f"marketing (Meta Ads): {url} did not answer after {self.max_attempts} attempts "
            f"(last: {problem}); the task is retried."
        )

    def _bounded(self, seconds: float, url: str, message: str) -> float:
        """A wait Meta asks for, when this run may wait that long."""
        if seconds > self.backoff_max:
            said = f" ({message})" if message else ""
            raise SourceUnavailableError(
                f"marketing (Meta Ads): {url} is throttled{said}; Meta's usage headers ask to "
                f"wait {seconds:.0f} s, longer than OPS_HTTP_BACKOFF_MAX_S "
                f"({self.backoff_max:g} s): the load stopped and a later run reads on."
            )
        return seconds

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, 0.5 * 2 ** (attempt - 1))

    def _wait(self, seconds: float, problem: str, url: str, attempt: int) -> None:
        log.warning(
            "marketing (Meta Ads): %s from %s; next attempt in %.1f s",
            problem,
            urlsplit(url).path,
            seconds,
        )
        self.waits.append(seconds)
        self.sleep(seconds)

    def _refuse(
        self,
        response: requests.Response,
        url: str,
        code: int | None,
        subcode: int | None,
        message: str,
    ) -> None:
        """Raise for answers that come back the same on every attempt."""
        status = response.status_code
        said = f"#{code}: {message}" if code is not None else (message or response.reason)
        if code in THROTTLE_CODES or code in TRANSIENT_CODES or status == 429 or status >= 500:
            return
        if code in TOKEN_CODES or status == 401:
            raise SourceConfigError(
                f"marketing (Meta Ads): {urlsplit(url).path} refused the access token ({said}): "
                "check OPS_META_ACCESS_TOKEN (expired or revoked tokens need a new one)."
            )
        if code in PERMISSION_CODES or status == 403 or (code, subcode) == MISSING_OBJECT:
            raise SourceConfigError(
                f"marketing (Meta Ads): {urlsplit(url).path} is not allowed to this token "
                f"({said}): check that the ad account in mapping file {PLATFORM}.ad_account_ids "
                "is right and that OPS_META_ACCESS_TOKEN's user has ads_read on it."
            )
        if status == 404:
            raise SourceConfigError(
                f"marketing (Meta Ads): {urlsplit(url).path} does not exist (404 {said}): check "
                f"OPS_META_API_URL, OPS_META_API_VERSION and {PLATFORM}.ad_account_ids."
            )
        raise SourceDataError(
            f"marketing (Meta Ads): {url} refused the request ({status} {said}); the load stopped."
        )

    @staticmethod
    def _json(response: requests.Response, url: str) -> dict[str, Any]:
        return json_page(response, url, "marketing (Meta Ads)")


# --- one load's readers ------------------------------------------------------------------------


class _Accounts:
    def __init__(self, settings: Settings, client: MetaClient, config: Mapping[str, Any]):
        self.settings = settings
        self.client = client
        self.config = config
        self._currency: dict[str, Any] = {}

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[list[Mapping[str, Any]]]:
        """Every page of an edge, asking for the ``after`` cursor while a page has
        ``paging.next`` (the last has none, its cursors stay); a cursor served twice stops the
        load. The ``next`` URL itself is not followed: it carries the access token."""
        seen: set[str] = set()
        query = {**params, "limit": min(self.settings.page_size, PAGE_MAX)}
        while True:
            body = self.client.get(path, query)
            data = body.get("data")
            if not isinstance(data, list) or not all(isinstance(d, Mapping) for d in data):
                raise SourceDataError(
                    f"marketing (Meta Ads): {self.client.url(path)} is not a page of {path}: "
                    f"'data' is {'missing' if data is None else 'not a list of objects'}."
                )
            yield data
            paging = body.get("paging") if isinstance(body.get("paging"), Mapping) else {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next"):
                return
            if not isinstance(after, str) or not after or after in seen:
                raise SourceDataError(
                    f"marketing (Meta Ads): {self.client.url(path)} has a next page but its "
                    f"'after' cursor {str(after)[:60]!r} is missing or was served before: "
                    "paging cannot go on; the load stopped."
                )
            seen.add(after)
            query["after"] = after

    def currency(self, account: str) -> Any:
        """The ad account's currency (``/act_{id}?fields=currency,timezone_name``)."""
        if account not in self._currency:
            body = self.client.get(f"/act_{account}", {"fields": "currency,timezone_name"})
            self._currency[account] = body.get("currency")
            log.info(
                "marketing (Meta Ads): ad account act_%s reports in %s, days of %s",
                account,
                body.get("currency"),
                body.get("timezone_name"),
            )
        return self._currency[account]

    def origin(self, path: str) -> Origin:
        return Origin(f"GET {self.client.base_url}{path}")

    def read_ad_performance(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        start, end = ad_window(state, window, self.settings.ad_lookback_days)
        oldest = end - timedelta(days=INSIGHTS_MONTHS * 30)
        since = max(start, oldest)
        for account in self.config["ad_account_ids"]:
            currency = self.currency(account)
            path = f"/act_{account}/insights"
            params = {
                "level": "campaign",
                "fields": INSIGHTS_FIELDS,
                "time_increment": "1",
                "time_range": json.dumps(
                    {"since": since.isoformat(), "until": end.isoformat()}, separators=(",", ":")
                ),
            }
            data = [item for page in self.pages(path, params) for item in page]
            rows, reasons = performance_rows(data, self.config, account, currency)
            for at in range(0, len(rows), BATCH_ROWS):
                yield rows_to_batch(
                    entity,
                    rows[at : at + BATCH_ROWS],
                    window.end,
                    self.origin(path),
                    reasons[at : at + BATCH_ROWS],
                )
        last = state.get("last_date")
        if last is None or end.isoformat() > last:
            state["last_date"] = end.isoformat()

    def read_campaigns(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        for account in self.config["ad_account_ids"]:
            currency = self.currency(account)
            path = f"/act_{account}/campaigns"
            params = {"fields": CAMPAIGN_FIELDS, "effective_status": CAMPAIGN_STATES}
            for page in self.pages(path, params):
                rows, reasons = campaign_rows(page, self.config, account, currency)
                yield rows_to_batch(entity, rows, window.end, self.origin(path), reasons)


def readers(settings: Settings, stack: ExitStack, config: Mapping[str, Any]) -> dict[str, Reader]:
    """``ad_performance`` and ``campaigns`` from the ad accounts of the mapping file's
    ``meta_ads`` section (``config``, validated); the token is checked here."""
    for key, what in (
        ("ad_account_ids", "the ad accounts whose campaigns are read"),
        ("conversion_action_types", "the action types counted as conversions"),
    ):
        if not config[key]:
            raise mapping.MappingError(
                f"mapping file: {PLATFORM}.{key} is required with OPS_AD_PLATFORMS naming "
                f"meta_ads ({what})"
            )
    client = MetaClient(settings)
    stack.callback(client.close)
    accounts = _Accounts(settings, client, config)
    return {"ad_performance": accounts.read_ad_performance, "campaigns": accounts.read_campaigns}
