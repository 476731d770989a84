"""The demo world's Google Ads campaigns behind the Google Ads API's REST interface (GAQL
reporting, following Google's API reference for v23; versions v19 to v26 answer).

- ``POST /token``: Google's OAuth token endpoint, refresh-token grant only: the demo client's
  id, secret and refresh token (``DEMO_CREDENTIALS``) get an access token valid
  ``token_lifetime_s``; others get OAuth's ``invalid_client`` / ``invalid_grant``.
- ``POST /v{N}/customers/{customer_id}/googleAds:search``: a GAQL query (``SELECT … FROM
  campaign [WHERE segments.date BETWEEN 'a' AND 'b']``) over the world's ``google_ads``
  campaigns, paged by ``nextPageToken`` (absent on the last page; ``page_size`` results a
  page, Google's 10,000 by default). Results are camelCase, int64 values text, conversions a
  number, enums names, as Google serves them. From v23 on the campaign dates are
  ``campaign.start_date_time``/``end_date_time``; the older names are refused as Google does.
- the accounts: a manager account (``MANAGER_ID``, sent as ``login-customer-id``) over two
  customer accounts; odd-numbered campaigns are the first's, even-numbered the second's. The
  world gives each ad channel one currency (Google's: USD) and counts days in UTC, so both
  accounts report in the world's currency and time zone (Etc/UTC): accounts in other
  currencies and zones are the adapter's unit tests' business.
- errors in Google's body (``error.details[].errors[].errorCode``): an unknown access token
  401 ``authenticationError``, a missing developer token or a customer outside the manager
  403 ``authorizationError``, a bad query or page token 400 ``queryError``/``requestError``,
  and every ``quota_every``-th search 429 ``quotaError: RESOURCE_EXHAUSTED`` with a
  ``retryDelay`` of ``retry_delay_s``; the server's injected faults come in the same bodies.

A campaign's Google id is the number of its world id (``gads-0007`` -> 7); the demo mapping
file's ``campaign_id_format`` (``gads-{id:04d}``) turns it back.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow.parquet as pq

from ops_demo import DEMO_TOKENS

PATH = re.compile(r"/(?P<version>v\d+)/customers/(?P<customer>\d+)/googleAds:search")
TOKEN_PATH = "/token"
VERSIONS = tuple(range(19, 27))
DATE_TIME_FROM = 23
CHANNEL = "google_ads"
MANAGER_ID = "9000000001"
CUSTOMERS = ("1000000001", "1000000002")
TIME_ZONE = "Etc/UTC"
NO_END = "2037-12-30 23:59:59"
DEMO_CREDENTIALS = {
    "client_id": DEMO_TOKENS["OPS_GOOGLE_ADS_CLIENT_ID"],
    "client_secret": DEMO_TOKENS["OPS_GOOGLE_ADS_CLIENT_SECRET"],
    "refresh_token": DEMO_TOKENS["OPS_GOOGLE_ADS_REFRESH_TOKEN"],
    "developer_token": DEMO_TOKENS["OPS_GOOGLE_ADS_DEVELOPER_TOKEN"],
}
DEFAULT_CONFIG: dict[str, Any] = {
    "page_size": 10_000,
    "quota_every": None,
    "retry_delay_s": 1,
    "token_lifetime_s": 3600,
}
# world objective -> advertising channel type; status -> (status, serving status)
CHANNEL_TYPES = {"acquisition": "SEARCH", "retargeting": "DISPLAY", "brand": "VIDEO"}
STATUSES = {
    "active": ("ENABLED", "SERVING"),
    "paused": ("PAUSED", "SERVING"),
    "ended": ("ENABLED", "ENDED"),
}
FAILURE_TYPE = "type.googleapis.com/google.ads.googleads.{version}.errors.GoogleAdsFailure"
_QUERY = re.compile(
    r"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<resource>\w+)"
    r"(?:\s+WHERE\s+segments\.date\s+BETWEEN\s+'(?P<since>[\d-]+)'\s+AND\s+'(?P<until>[\d-]+)')?\s*",
    re.IGNORECASE | re.DOTALL,
)
METRICS = ("metrics.impressions", "metrics.clicks", "metrics.cost_micros", "metrics.conversions")


def validate_config(config: Any) -> dict[str, Any]:
    """The ``google_ads`` config, defaults filled in; raises ValueError naming a bad key."""
    if not isinstance(config, Mapping):
        raise ValueError("google_ads must be an object")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"google_ads: unknown keys {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    out = {**DEFAULT_CONFIG, **config}
    for key, low in (("page_size", 1), ("retry_delay_s", 0), ("token_lifetime_s", 1)):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < low:
            raise ValueError(f"google_ads.{key} must be a whole number >= {low}")
    every = out["quota_every"]
    if every is not None and (type(every) is not int or every < 1):
        raise ValueError("google_ads.quota_every must be a whole number >= 1 or null")
    return out


@dataclass
class Answer:
    status: int
    body: str
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _put(out: dict[str, Any], path: str, value: Any) -> None:
    """``value`` at a GAQL field's place in a result (``metrics.cost_micros`` ->
    ``{"metrics": {"costMicros": …}}``); a null is left out, as Google leaves it out."""
    if value is None:
        return
    *parents, leaf = path.split(".")
    for part in parents:
        out = out.setdefault(_camel(part), {})
    out[_camel(leaf)] = value


def _number(world_id: str) -> int:
    return int(world_id.rsplit("-", 1)[1])


def build_accounts(world_dir: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each customer account's campaigns and campaign-days, as GAQL rows by field name."""
    campaigns = pq.read_table(world_dir / "api" / "campaigns.parquet").to_pylist()
    days = pq.read_table(world_dir / "api" / "ad_performance.parquet").to_pylist()
    accounts: dict[str, dict[str, list[dict[str, Any]]]] = {
        c: {"campaigns": [], "days": []} for c in CUSTOMERS
    }
    currency = {c: "USD" for c in CUSTOMERS}
    fields: dict[int, dict[str, Any]] = {}
    for row in campaigns:
        if row["channel"] != CHANNEL:
            continue
        number = _number(row["campaign_id"])
        customer = CUSTOMERS[(number - 1) % len(CUSTOMERS)]
        currency[customer] = row["currency"]
        status, serving = STATUSES[row["status"]]
        end = row["end_date"]
        fields[number] = {
            "campaign.id": str(number),
            "campaign.name": row["campaign_name"],
            "campaign.status": status,
            "campaign.serving_status": serving,
            "campaign.advertising_channel_type": CHANNEL_TYPES[row["objective"]],
            "start": f"{row['start_date'].isoformat()} 00:00:00",
            "end": f"{end.isoformat()} 23:59:59" if end else NO_END,
            "campaign_budget.amount_micros": str(round(row["daily_budget"] * 100) * 10_000),
            "customer": customer,
        }
        accounts[customer]["campaigns"].append(fields[number])
    for row in days:
        if row["channel"] != CHANNEL:
            continue
        number = _number(row["campaign_id"])
        customer = CUSTOMERS[(number - 1) % len(CUSTOMERS)]
        accounts[customer]["days"].append(
            {
                "campaign.id": str(number),
                "segments.date": row["date"].isoformat(),
                "metrics.impressions": str(row["impressions"]),
                "metrics.clicks": str(row["clicks"]),
                "metrics.cost_micros": str(round(float(row["spend"]) * 100) * 10_000),
                "metrics.conversions": float(row["platform_conversions"]),
            }
        )
    for customer, account in accounts.items():
        account["customer"] = [{"currency_code": currency[customer]}]
    return accounts


class GoogleAdsApi:
    """Answers the token endpoint and ``googleAds:search`` from the world directory."""

    name = "google_ads"

    def __init__(self, world_dir: Path, credentials: Mapping[str, str] = DEMO_CREDENTIALS):
        self.world_dir = Path(world_dir)
        self.credentials = dict(credentials)
        self._lock = threading.Lock()
        self._world: tuple[Any, dict[str, Any]] | None = None
        self._tokens: set[str] = set()
        self._searches = 0

    def reset(self) -> None:
        with self._lock:
            self._searches = 0

    def accounts(self) -> dict[str, Any]:
        files = [self.world_dir / "api" / f"{n}.parquet" for n in ("campaigns", "ad_performance")]
        signature = tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in (f.stat() for f in files))
        with self._lock:
            if self._world is None or self._world[0] != signature:
                self._world = (signature, build_accounts(self.world_dir))
            return self._world[1]

    def answer(
        self,
        target: str,
        headers: Mapping[str, str],
        config: Mapping[str, Any],
        fault: str | None,
        body: bytes = b"",
    ) -> Answer:
        path = urlsplit(target).path
        if path == TOKEN_PATH:
            return self._token(body, config)
        match = PATH.fullmatch(path)
        version = int(match["version"][1:]) if match else 0
        if match is None or version not in VERSIONS:
            return Answer(404, "<html><body>Error 404 (Not Found)</body></html>", "text/html")
        fail = _Failure(match["version"])
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token not in self._tokens:
            return fail(
                401,
                "UNAUTHENTICATED",
                "authenticationError",
                "OAUTH_TOKEN_INVALID",
                "Request had invalid authentication credentials.",
            )
        if headers.get("developer-token") != self.credentials["developer_token"]:
            return fail(
                403,
                "PERMISSION_DENIED",
                "authorizationError",
                "DEVELOPER_TOKEN_PROHIBITED",
                "Developer token is not allowed with project.",
            )
        customer = match["customer"]
        if customer not in CUSTOMERS or headers.get("login-customer-id") != MANAGER_ID:
            return fail(
                403,
                "PERMISSION_DENIED",
                "authorizationError",
                "USER_PERMISSION_DENIED",
                "User doesn't have permission to access customer. Note: If you're accessing a "
                "client customer, the manager's customer id must be set in the "
                "'login-customer-id' header.",
            )
        if fault == "429" or self._quota_spent(config):
            return fail(
                429,
                "RESOURCE_EXHAUSTED",
                "quotaError",
                "RESOURCE_EXHAUSTED",
                f"Too many requests. Retry in {config['retry_delay_s']} seconds.",
                {"quotaErrorDetails": {"retryDelay": f"{config['retry_delay_s']}s"}},
            )
        if fault is not None:
            status = int(fault)
            name = "UNAVAILABLE" if status == 503 else "INTERNAL"
            return fail(status, name, "internalError", "INTERNAL_ERROR", "Internal error.")
        try:
            request = json.loads(body or b"{}")
            query = request["query"]
        except (ValueError, KeyError, TypeError):
            return fail(400, "INVALID_ARGUMENT", "requestError", "BAD_REQUEST", "No query.")
        return self._search(customer, version, str(query), request.get("pageToken"), config, fail)

    def _quota_spent(self, config: Mapping[str, Any]) -> bool:
        with self._lock:
            self._searches += 1
            every = config["quota_every"]
            return every is not None and self._searches % every == 0

    def _token(self, body: bytes, config: Mapping[str, Any]) -> Answer:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (
            self.credentials["client_id"],
            self.credentials["client_secret"],
        ):
            return _json(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        if form.get("refresh_token") != self.credentials["refresh_token"]:
            return _json(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        token = f"ya29.demo-{secrets.token_urlsafe(12)}"
        with self._lock:
            self._tokens.add(token)
        return _json(
            200,
            {
                "access_token": token,
                "expires_in": config["token_lifetime_s"],
                "scope": "https://www.googleapis.com/auth/adwords",
                "token_type": "Bearer",
            },
        )

    def _search(
        self,
        customer: str,
        version: int,
        query: str,
        page_token: Any,
        config: Mapping[str, Any],
        fail: _Failure,
    ) -> Answer:
        parsed = _QUERY.fullmatch(query)
        if parsed is None or parsed["resource"].lower() != "campaign":
            return fail(
                400,
                "INVALID_ARGUMENT",
                "queryError",
                "UNEXPECTED_INPUT",
                f"Cannot parse {query!r}.",
            )
        selected = [f.strip() for f in parsed["fields"].split(",")]
        dates = (
            ("start_date_time", "end_date_time")
            if version >= DATE_TIME_FROM
            else (
                "start_date",
                "end_date",
            )
        )
        known = {
            "customer.currency_code",
            "customer.time_zone",
            "campaign.id",
            "campaign.name",
            "campaign.status",
            "campaign.serving_status",
            "campaign.advertising_channel_type",
            "campaign_budget.amount_micros",
            "segments.date",
            *(f"campaign.{d}" for d in dates),
            *METRICS,
        }
        for name in selected:
            if name not in known:
                return fail(
                    400,
                    "INVALID_ARGUMENT",
                    "queryError",
                    "UNRECOGNIZED_FIELD",
                    f"Unrecognized field in the query: '{name}'.",
                )
        by_day = "segments.date" in selected or any(m in selected for m in METRICS)
        if by_day and parsed["since"] is None:
            return fail(
                400,
                "INVALID_ARGUMENT",
                "queryError",
                "EXPECTED_FILTERS_ON_DATE_RANGE",
                "Expected a finite date range on segments.date.",
            )
        account = self.accounts()[customer]
        if by_day:
            since, until = parsed["since"], parsed["until"]
            try:
                date.fromisoformat(since), date.fromisoformat(until)
            except ValueError:
                return fail(400, "INVALID_ARGUMENT", "queryError", "INVALID_VALUE", "Invalid date.")
            rows = [r for r in account["days"] if since <= r["segments.date"] <= until]
            rows.sort(key=lambda r: (r["segments.date"], int(r["campaign.id"])))
            names = {c["campaign.id"]: c for c in account["campaigns"]}
            rows = [{**names[r["campaign.id"]], **r} for r in rows]
        else:
            rows = sorted(account["campaigns"], key=lambda r: int(r["campaign.id"]))
        digest = base64.urlsafe_b64encode(query.encode()).decode()[:24]
        start = 0
        if page_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(str(page_token)))
                start = int(token["o"])
                if token["q"] != digest:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return fail(
                    400, "INVALID_ARGUMENT", "requestError", "INVALID_PAGE_TOKEN", "Bad page token."
                )
        stop = start + config["page_size"]
        currency = account["customer"][0]["currency_code"]
        results = []
        for row in rows[start:stop]:
            result: dict[str, Any] = {
                "customer": {"resourceName": f"customers/{customer}"},
                "campaign": {
                    "resourceName": f"customers/{customer}/campaigns/{row['campaign.id']}"
                },
            }
            for name in selected:
                if name == "customer.currency_code":
                    value: Any = currency
                elif name == "customer.time_zone":
                    value = TIME_ZONE
                elif name.startswith("campaign.start_date"):
                    value = row["start"] if name.endswith("time") else row["start"][:10]
                elif name.startswith("campaign.end_date"):
                    value = row["end"] if name.endswith("time") else row["end"][:10]
                else:
                    value = row.get(name)
                _put(result, name, value)
            results.append(result)
        page: dict[str, Any] = {}
        if results:
            page["results"] = results
        if stop < len(rows):
            page["nextPageToken"] = base64.urlsafe_b64encode(
                json.dumps({"q": digest, "o": stop}).encode()
            ).decode()
        page["fieldMask"] = ",".join(
            ".".join(_camel(p) for p in name.split(".")) for name in selected
        )
        page["requestId"] = secrets.token_urlsafe(16)
        return Answer(200, json.dumps(page), rows=len(results))


class _Failure:
    """Google Ads' error body for one API version."""

    def __init__(self, version: str) -> None:
        self.version = version

    def __call__(
        self,
        status: int,
        name: str,
        kind: str,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> Answer:
        error: dict[str, Any] = {"errorCode": {kind: code}, "message": message}
        if details:
            error["details"] = details
        body = {
            "error": {
                "code": status,
                "message": message if status < 500 else "Internal error encountered.",
                "status": name,
                "details": [
                    {
                        "@type": FAILURE_TYPE.format(version=self.version),
                        "errors": [error],
                        "requestId": secrets.token_urlsafe(16),
                    }
                ],
            }
        }
        return _json(status, body)


def _json(status: int, body: Any) -> Answer:
    return Answer(status, json.dumps(body))
