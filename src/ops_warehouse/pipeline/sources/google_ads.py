"""Marketing from Google Ads (the Google Ads API's REST interface, GAQL reporting): the
contract's ``ad_performance`` and ``campaigns`` of the ``google_ads`` channel
(docs/sources.md, "Google Ads").

- ad performance: one ``googleAds:search`` query per customer account, campaigns by day
  (``segments.date``) with impressions, clicks, cost (micros of the account's currency) and
  conversions (a fraction: data-driven attribution splits them), over a window that re-reads
  the last ``OPS_AD_LOOKBACK_DAYS`` days (Google restates them); rows are summed by campaign
  and day and the day is the account's own (``customer.time_zone``);
- campaigns: every campaign of each account, with status, serving status, channel type (the
  mapping file turns it into an objective), dates and daily budget.

The customer accounts are the mapping file's ``google_ads.customer_ids`` (read through the
manager account ``login_customer_id`` when set). Credentials: an OAuth client and refresh
token exchanged at ``OPS_GOOGLE_ADS_OAUTH_URL`` for an access token, and the developer token,
all from the environment.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from functools import partial
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

PLATFORM = "google_ads"
SEARCH = "/{version}/customers/{customer_id}/googleAds:search"
# Google's "no end date" (campaigns without one end on 2037-12-30).
NO_END = "2037-12-30"
# From v23 on a campaign's dates are date-times (campaign.start_date_time, yyyy-MM-dd HH:mm:ss).
DATE_TIME_FROM = 23
# an access token is renewed this long before Google says it expires
TOKEN_MARGIN_S = 60

OBJECTIVES: tuple[str, ...] = contract_entity("campaigns").allowed["objective"]
STATUSES = {"ENABLED": "active", "PAUSED": "paused", "REMOVED": "ended"}
# serving statuses that mean the campaign runs no more, whatever its status
ENDED_SERVING = ("ENDED",)
# authentication errors a new access token may cure (renewed once); any other is permanent
RENEWABLE = ("OAUTH_TOKEN_EXPIRED", "OAUTH_TOKEN_INVALID", "OAUTH_TOKEN_REVOKED")

_CUSTOMER_ID = re.compile(r"\d{10}")


def _customer_id(value: Any, path: str) -> str:
    """A customer id, with or without its dashes (123-456-7890)."""
    digits = str(value).strip().replace("-", "") if not isinstance(value, bool) else ""
    if _CUSTOMER_ID.fullmatch(digits):
        return digits
    raise mapping.MappingError(
        f"mapping file: {path} must be a Google Ads customer id (10 digits, e.g. "
        f"123-456-7890), not {value!r}"
    )


SECTION = mapping.register(
    PLATFORM,
    mapping.Section(
        {
            "customer_ids": mapping.Key(
                mapping.list_of(_customer_id),
                doc="the customer accounts whose campaigns are read (10-digit ids)",
            ),
            "login_customer_id": mapping.Key(
                _customer_id,
                doc="the manager account the credentials reach the customers through "
                "(the login-customer-id header); unset: they are reached directly",
            ),
            "campaign_id_format": mapping.Key(
                id_format,
                default="google_ads-{id}",
                doc="the contract's campaign id of campaign {id}: unique across platforms, "
                "and the utm_campaign the tracking template gives signups",
            ),
            "objectives": mapping.Key(
                mapping.mapping_of(mapping.text, mapping.one_of(*OBJECTIVES)),
                default={},
                doc="advertising_channel_type (SEARCH, DISPLAY, VIDEO, ...) -> objective",
            ),
            "objective_default": mapping.Key(
                mapping.one_of(*OBJECTIVES),
                default="acquisition",
                doc="objective of a channel type 'objectives' does not name",
            ),
        },
        doc="Google Ads as an ad platform of the marketing source",
    ),
)


# --- Google's rows -> contract rows (no I/O) -------------------------------------------------


def _get(row: Mapping[str, Any], path: str) -> Any:
    """A field of a GAQL result row by its camelCase path (``metrics.costMicros``)."""
    value: Any = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def performance_rows(
    results: list[Mapping[str, Any]], config: Mapping[str, Any], customer: str
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Contract rows of one customer's ``ad_performance`` results, summed by campaign and day,
    and each row's reason to quarantine it (None: none)."""
    fmt = config["campaign_id_format"]
    summed = Summer()
    for result in results:
        row = {
            "date": _get(result, "segments.date"),
            "channel": PLATFORM,
            "campaign_id": campaign_id(fmt, _get(result, "campaign.id")),
            "currency": _get(result, "customer.currencyCode"),
        }
        micros = _get(result, "metrics.costMicros")
        numbers = {
            "impressions": _or_served(
                count(_get(result, "metrics.impressions") or 0), result, "metrics.impressions"
            ),
            "clicks": _or_served(
                count(_get(result, "metrics.clicks") or 0), result, "metrics.clicks"
            ),
            "spend": _or_served(
                amount(micros if micros is not None else 0, 6), result, "metrics.costMicros"
            ),
            "platform_conversions": _or_served(
                amount(_get(result, "metrics.conversions") or 0), result, "metrics.conversions"
            ),
        }
        summed.add(row, numbers)
    rows = list(summed.rows.values())
    key = f"{PLATFORM}.customer_ids"
    reasons = [currency_reason("Google Ads", customer, key, r["currency"]) for r in rows]
    return rows, reasons


def _or_served(value: Any, result: Mapping[str, Any], path: str) -> Any:
    """A parsed number, or the value as served when it is none (its row is quarantined)."""
    return _get(result, path) if value is None else value


def campaign_rows(
    results: list[Mapping[str, Any]],
    config: Mapping[str, Any],
    customer: str,
    read_at: str,
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Contract rows of one customer's campaigns, and each row's reason to quarantine it."""
    fmt = config["campaign_id_format"]
    objectives = config["objectives"]
    rows, reasons = [], []
    key = f"{PLATFORM}.customer_ids"
    for result in results:
        status = _get(result, "campaign.status")
        serving = _get(result, "campaign.servingStatus")
        channel_type = _get(result, "campaign.advertisingChannelType")
        start = _get(result, "campaign.startDateTime") or _get(result, "campaign.startDate")
        end = _get(result, "campaign.endDateTime") or _get(result, "campaign.endDate")
        end_day = end[:10] if isinstance(end, str) else end
        budget = _get(result, "campaignBudget.amountMicros")
        currency = _get(result, "customer.currencyCode")
        rows.append(
            {
                "campaign_id": campaign_id(fmt, _get(result, "campaign.id")),
                "campaign_name": _get(result, "campaign.name"),
                "channel": PLATFORM,
                "objective": objectives.get(channel_type, config["objective_default"]),
                "status": "ended" if serving in ENDED_SERVING else STATUSES.get(status, status),
                "start_date": start[:10] if isinstance(start, str) else start,
                "end_date": None if end_day is None or end_day >= NO_END else end_day,
                "daily_budget": _or_served(
                    amount(budget if budget is not None else 0, 6),
                    result,
                    "campaignBudget.amountMicros",
                ),
                "currency": currency,
                "updated_at": read_at,
            }
        )
        reasons.append(currency_reason("Google Ads", customer, key, currency))
    return rows, reasons


# --- the HTTP client ---------------------------------------------------------------------------


def _failure(body: Any) -> tuple[str, str, str, float | None]:
    """What a Google Ads error body says: (status, first error code as ``kind: CODE``, its
    message with the request id, retry delay in seconds or None)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return "", "", "", None
    status = str(error.get("status") or "")
    code, message, delay, request_id = "", str(error.get("message") or ""), None, ""
    for detail in error.get("details") or ():
        if not isinstance(detail, Mapping):
            continue
        request_id = str(detail.get("requestId") or request_id)
        for failure in detail.get("errors") or ():
            if not isinstance(failure, Mapping):
                continue
            kinds = failure.get("errorCode")
            if isinstance(kinds, Mapping) and kinds and not code:
                kind, value = next(iter(kinds.items()))
                code = f"{kind}: {value}"
                message = str(failure.get("message") or message)
            quota = _get(failure, "details.quotaErrorDetails.retryDelay")
            if delay is None and quota is not None:
                delay = _seconds(quota)
    if request_id:
        message = f"{message} (request id {request_id})"
    return status, code, " ".join(message.split())[:300], delay


def _seconds(value: Any) -> float | None:
    """A protobuf Duration in JSON (``"40591s"``, ``"1.5s"``) in seconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            seconds = float(value[:-1])
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _wait_text(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{seconds:.0f} s"


class GoogleAdsClient:
    """``googleAds:search`` requests, retried the way Google asks.

    A quota error (429 ``RESOURCE_EXHAUSTED``) waits the ``retryDelay`` Google gives when it is
    at most ``OPS_HTTP_BACKOFF_MAX_S``; a longer one (a developer token's daily quota) stops
    the run at once as transient, naming the wait. 5xx answers, timeouts and dropped
    connections back off, up to ``OPS_HTTP_MAX_ATTEMPTS`` attempts. Authentication errors
    (401, a refused refresh token) and authorization errors (403) stop at once naming the
    settings or mapping keys; other 4xx (a query Google refuses) stop naming the query."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, settings: Settings, login_customer_id: str | None) -> None:
        missing = [
            name
            for name, value in (
                ("OPS_GOOGLE_ADS_CLIENT_ID", settings.google_ads_client_id),
                ("OPS_GOOGLE_ADS_CLIENT_SECRET", settings.google_ads_client_secret),
                ("OPS_GOOGLE_ADS_REFRESH_TOKEN", settings.google_ads_refresh_token),
                ("OPS_GOOGLE_ADS_DEVELOPER_TOKEN", settings.google_ads_developer_token),
            )
            if not value
        ]
        if missing:
            raise SourceConfigError(
                f"marketing (Google Ads): {', '.join(missing)} not set: the OAuth client, its "
                "refresh token and the developer token come from the environment (the settings "
                "have no default credentials)."
            )
        self.settings = settings
        self.base_url = settings.google_ads_api_url.rstrip("/")
        self.version = settings.google_ads_api_version
        self.timeout = settings.http_timeout_s
        self.max_attempts = max(1, settings.http_max_attempts)
        self.backoff_max = settings.http_backoff_max_s
        self.session = requests.Session()
        self.session.headers["developer-token"] = settings.google_ads_developer_token
        if login_customer_id:
            self.session.headers["login-customer-id"] = login_customer_id
        self._access: tuple[str, float] | None = None
        self.requests_made = 0
        self.waits: list[float] = []

    def close(self) -> None:
        self.session.close()

    @property
    def major(self) -> int:
        digits = self.version.lstrip("v").split(".")[0]
        return int(digits) if digits.isdigit() else 0

    def search_url(self, customer: str) -> str:
        return self.base_url + SEARCH.format(version=self.version, customer_id=customer)

    def _access_token(self) -> str:
        """An access token, from the refresh token; renewed before it expires."""
        if self._access is not None and self.clock() < self._access[1]:
            return self._access[0]
        url = self.settings.google_ads_oauth_url
        form = {
            "grant_type": "refresh_token",
            "client_id": self.settings.google_ads_client_id,
            "client_secret": self.settings.google_ads_client_secret,
            "refresh_token": self.settings.google_ads_refresh_token,
        }
        response = self._send(partial(requests.post, url, data=form, timeout=self.timeout), url)
        body = body_or_none(response)
        if response.status_code != 200 or not isinstance(body, Mapping):
            said = body.get("error") if isinstance(body, Mapping) else None
            raise SourceConfigError(
                f"marketing (Google Ads): the OAuth server at {url} refused to renew the access "
                f"token ({response.status_code}: {said or response.reason}): check "
                "OPS_GOOGLE_ADS_CLIENT_ID, OPS_GOOGLE_ADS_CLIENT_SECRET and "
                "OPS_GOOGLE_ADS_REFRESH_TOKEN (a refresh token of a user with access to the "
                "accounts) and OPS_GOOGLE_ADS_OAUTH_URL."
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise SourceDataError(
                f"marketing (Google Ads): the OAuth server at {url} answered without an "
                "access_token."
            )
        lifetime = body.get("expires_in")
        lifetime = lifetime if isinstance(lifetime, int | float) else 3600
        self._access = (token, self.clock() + max(0.0, lifetime - TOKEN_MARGIN_S))
        return token

    def _send(self, call: Callable[[], requests.Response], url: str) -> requests.Response:
        """One request, retried on timeouts and dropped connections only."""
        for attempt in range(1, self.max_attempts + 1):
            self.requests_made += 1
            try:
                return call()
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = exc.__class__.__name__
            if attempt < self.max_attempts:
                self._wait(self._backoff(attempt), problem, url, attempt)
        raise SourceUnavailableError(
            f"marketing (Google Ads): {url} could not be reached after {self.max_attempts} "
            f"attempts ({problem}): check OPS_GOOGLE_ADS_API_URL / OPS_GOOGLE_ADS_OAUTH_URL "
            "and Google's status; the task is retried."
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, 0.5 * 2 ** (attempt - 1))

    def _wait(self, seconds: float, problem: str, url: str, attempt: int) -> None:
        log.warning(
            "marketing (Google Ads): %s from %s; attempt %d of %d in %.1f s",
            problem,
            urlsplit(url).path,
            attempt + 1,
            self.max_attempts,
            seconds,
        )
        self.waits.append(seconds)
        self.sleep(seconds)

    def search(self, customer: str, query: str, page_token: str | None) -> dict[str, Any]:
        """One page of a GAQL query's results for one customer account."""
        url = self.search_url(customer)
        payload = {"query": query, **({"pageToken": page_token} if page_token else {})}
        problem = ""
        renewed = False
        for attempt in range(1, self.max_attempts + 1):
            headers = {"Authorization": f"Bearer {self._access_token()}"}
            response = self._send(
                partial(
                    self.session.post, url, json=payload, headers=headers, timeout=self.timeout
                ),
                url,
            )
            if response.status_code == 200:
                return self._page(response, url)
            _, code, _, _ = _failure(body_or_none(response))
            if (
                response.status_code == 401
                and not renewed
                and (not code or code.endswith(RENEWABLE))
            ):
                # an access token that expired or was revoked early: renewed once, at once
                self._access, renewed = None, True
                continue
            wait = self._refuse(response, url, customer, query)
            problem = f"{response.status_code} {code or response.reason}"
            if attempt < self.max_attempts:
                self._wait(
                    wait if wait is not None else self._backoff(attempt), problem, url, attempt
                )
        raise SourceUnavailableError(
            f"marketing (Google Ads): {url} did not answer after {self.max_attempts} attempts "
            f"(last: {problem}); the task is retried."
        )

    def _refuse(
        self, response: requests.Response, url: str, customer: str, query: str
    ) -> float | None:
        """Raise for answers that come back the same on every attempt; else the wait Google
        asks for before the next one (None: back off)."""
        status = response.status_code
        state, code, message, delay = _failure(body_or_none(response))
        named = code or state or response.reason
        said = f"{named}: {message}" if message else named
        if status == 429 or state == "RESOURCE_EXHAUSTED" or code.startswith("quotaError"):
            if delay is not None and delay > self.backoff_max:
                raise SourceUnavailableError(
                    f"marketing (Google Ads): {url} refused the request for quota ({said}); "
                    f"Google asks to wait {_wait_text(delay)}, longer than "
                    f"OPS_HTTP_BACKOFF_MAX_S ({self.backoff_max:g} s): the load stopped and a "
                    "later run reads on (a developer token with basic access has a daily "
                    "operations quota)."
                )
            return delay
        if status == 401 or code.startswith("authenticationError"):
            raise SourceConfigError(
                f"marketing (Google Ads): {url} refused the credentials ({said}): check "
                "OPS_GOOGLE_ADS_REFRESH_TOKEN (a user with access to the accounts), "
                "OPS_GOOGLE_ADS_CLIENT_ID / OPS_GOOGLE_ADS_CLIENT_SECRET and "
                "OPS_GOOGLE_ADS_DEVELOPER_TOKEN."
            )
        if status == 403 or code.startswith("authorizationError"):
            raise SourceConfigError(
                f"marketing (Google Ads): customer {customer} refused these credentials "
                f"({said}) at {url}: check the account in mapping file {PLATFORM}.customer_ids, "
                f"that {PLATFORM}.login_customer_id names the manager account it is reached "
                "through, that the OAuth user has access to it and that "
                "OPS_GOOGLE_ADS_DEVELOPER_TOKEN is approved for it."
            )
        if status == 404:
            raise SourceConfigError(
                f"marketing (Google Ads): {url} does not exist (404): check "
                "OPS_GOOGLE_ADS_API_URL and OPS_GOOGLE_ADS_API_VERSION (a version Google still "
                "serves, e.g. v23)."
            )
        if 400 <= status < 500:
            raise SourceDataError(
                f"marketing (Google Ads): {url} refused the query ({status} {said}) for "
                f"customer {customer}: {' '.join(query.split())[:200]}; the load stopped."
            )
        return None

    @staticmethod
    def _page(response: requests.Response, url: str) -> dict[str, Any]:
        body = json_page(response, url, "marketing (Google Ads)")
        results = body.get("results", [])
        if not isinstance(results, list) or not all(isinstance(r, Mapping) for r in results):
            raise SourceDataError(
                f"marketing (Google Ads): {url} is not a page of search results: 'results' is "
                "not a list of objects."
            )
        return body


# --- one load's readers ------------------------------------------------------------------------


class _Accounts:
    def __init__(self, settings: Settings, client: GoogleAdsClient, config: Mapping[str, Any]):
        self.settings = settings
        self.client = client
        self.config = config

    def pages(self, customer: str, query: str) -> Iterator[list[Mapping[str, Any]]]:
        """Every page of a query's results, following ``nextPageToken`` to the last page (it
        has none); a token served twice stops the load (paging that would never end)."""
        seen: set[str] = set()
        token = None
        while True:
            body = self.client.search(customer, query, token)
            yield body.get("results", [])
            token = body.get("nextPageToken")
            if not token:
                return
            if not isinstance(token, str) or token in seen:
                raise SourceDataError(
                    f"marketing (Google Ads): {self.client.search_url(customer)} served the "
                    f"page token {str(token)[:60]!r} twice: paging cannot go on; the load "
                    "stopped."
                )
            seen.add(token)

    def origin(self, customer: str) -> Origin:
        return Origin(f"POST {self.client.search_url(customer)}")

    def read_ad_performance(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        start, end = ad_window(state, window, self.settings.ad_lookback_days)
        query = (
            "SELECT customer.currency_code, customer.time_zone, campaign.id, segments.date, "
            "metrics.impressions, metrics.clicks, metrics.cost_micros, metrics.conversions "
            f"FROM campaign WHERE segments.date BETWEEN '{start.isoformat()}' AND "
            f"'{end.isoformat()}'"
        )
        for customer in self.config["customer_ids"]:
            results = [r for page in self.pages(customer, query) for r in page]
            rows, reasons = performance_rows(results, self.config, customer)
            for at in range(0, len(rows), BATCH_ROWS):
                yield rows_to_batch(
                    entity,
                    rows[at : at + BATCH_ROWS],
                    window.end,
                    self.origin(customer),
                    reasons[at : at + BATCH_ROWS],
                )
        last = state.get("last_date")
        if last is None or end.isoformat() > last:
            state["last_date"] = end.isoformat()

    def read_campaigns(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        dates = (
            "campaign.start_date_time, campaign.end_date_time"
            if self.client.major >= DATE_TIME_FROM
            else "campaign.start_date, campaign.end_date"
        )
        query = (
            "SELECT customer.currency_code, campaign.id, campaign.name, campaign.status, "
            f"campaign.serving_status, campaign.advertising_channel_type, {dates}, "
            "campaign_budget.amount_micros FROM campaign"
        )
        read_at = window.end.isoformat()
        for customer in self.config["customer_ids"]:
            for page in self.pages(customer, query):
                rows, reasons = campaign_rows(page, self.config, customer, read_at)
                yield rows_to_batch(entity, rows, window.end, self.origin(customer), reasons)


def readers(settings: Settings, stack: ExitStack, config: Mapping[str, Any]) -> dict[str, Reader]:
    """``ad_performance`` and ``campaigns`` from the accounts of the mapping file's
    ``google_ads`` section (``config``, validated); the credentials are checked here."""
    if not config["customer_ids"]:
        raise mapping.MappingError(
            f"mapping file: {PLATFORM}.customer_ids is required with OPS_AD_PLATFORMS naming "
            "google_ads (the customer accounts whose campaigns are read)"
        )
    client = GoogleAdsClient(settings, config["login_customer_id"])
    stack.callback(client.close)
    accounts = _Accounts(settings, client, config)
    return {"ad_performance": accounts.read_ad_performance, "campaigns": accounts.read_campaigns}
