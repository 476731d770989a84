"""The Google Ads adapter (ops_warehouse.pipeline.sources.google_ads) against a scripted Google.

Payloads are written for these tests in Google Ads' REST shapes (camelCase, int64 values as
text, the GoogleAdsFailure error body), with ids and numbers of our own. A small HTTP server
answers the token endpoint and each customer's ``googleAds:search`` from a script and records
every request, so the tests see what was asked, how often and how long the adapter waited.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from ops_warehouse.errors import (
    SourceConfigError,
    SourceDataError,
    SourceUnavailableError,
    is_permanent,
)
from ops_warehouse.pipeline.contracts import entity
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.sources import ad_platforms, google_ads, mapping
from tests.conftest import make_settings
from tests.helpers import day_window, raw_snapshot

CUSTOMER = "1234567890"
OTHER = "2345678901"
MANAGER = "9876543210"
DAY = date(2026, 3, 10)
SEARCH = f"/v23/customers/{CUSTOMER}/googleAds:search"

Reply = tuple[int, Any]


class FakeGoogle:
    """The token endpoint and search paths answer from scripts: a list of replies taken in
    turn (the last repeats) or a function of the request's JSON body."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Callable[[dict], Reply]] = {}
        self.requests: list[tuple[str, Any, dict[str, str]]] = []
        self.token_replies: list[Reply] = [
            (200, {"access_token": "at-1", "expires_in": 3599, "token_type": "Bearer"})
        ]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlsplit(self.path).path
                if path == "/token":
                    body: Any = dict(parse_qsl(raw.decode()))
                    fake.requests.append((path, body, dict(self.headers)))
                    status, reply = _take(fake.token_replies)
                else:
                    body = json.loads(raw)
                    fake.requests.append((path, body, dict(self.headers)))
                    route = fake.routes.get(path)
                    if route is None:
                        status, reply = 404, "<html>Not Found</html>"
                    elif callable(route):
                        status, reply = route(body)
                    else:
                        status, reply = _take(route)
                payload = reply if isinstance(reply, str) else json.dumps(reply)
                data = payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def searches(self, path: str = SEARCH) -> list[dict]:
        return [body for p, body, _ in self.requests if p == path]

    def tokens(self) -> int:
        return sum(1 for p, _, _ in self.requests if p == "/token")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _take(replies: list[Reply]) -> Reply:
    return replies.pop(0) if len(replies) > 1 else replies[0]


@pytest.fixture
def google():
    fake = FakeGoogle()
    yield fake
    fake.close()


@pytest.fixture
def waits(monkeypatch):
    recorded: list[float] = []
    monkeypatch.setattr(google_ads.GoogleAdsClient, "sleep", staticmethod(recorded.append))
    return recorded


def write_mapping(path: Path, **overrides: Any) -> Path:
    section = {
        "customer_ids": [CUSTOMER],
        "login_customer_id": MANAGER,
        "objectives": {"SEARCH": "acquisition", "VIDEO": "brand"},
        **overrides,
    }
    path.write_text(json.dumps({"google_ads": section}))
    return path


def google_settings(tmp_path: Path, url: str, **overrides: Any):
    values = dict(
        ad_platforms=("google_ads",),
        mapping_file=write_mapping(tmp_path / "mapping.yml"),
        google_ads_api_url=url,
        google_ads_oauth_url=f"{url}/token",
        google_ads_api_version="v23",
        google_ads_client_id="cid",
        google_ads_client_secret="csecret",
        google_ads_refresh_token="rtoken",
        google_ads_developer_token="devtoken",
        http_backoff_max_s=5.0,
        http_max_attempts=4,
    )
    return make_settings(tmp_path / "home", tmp_path, url, **{**values, **overrides})


def result(
    day: str,
    campaign: str,
    impressions: int,
    clicks: int,
    micros: int,
    conv: float,
    currency: str = "USD",
    **segments: str,
) -> dict:
    return {
        "customer": {
            "resourceName": f"customers/{CUSTOMER}",
            "currencyCode": currency,
            "timeZone": "Europe/Berlin",
        },
        "campaign": {"resourceName": f"customers/{CUSTOMER}/campaigns/{campaign}", "id": campaign},
        "metrics": {
            "impressions": str(impressions),
            "clicks": str(clicks),
            "costMicros": str(micros),
            "conversions": conv,
        },
        "segments": {"date": day, **segments},
    }


def failure(status: int, name: str, kind: str, code: str, message: str, **details: Any) -> dict:
    error: dict[str, Any] = {"errorCode": {kind: code}, "message": message}
    if details:
        error["details"] = details
    return {
        "error": {
            "code": status,
            "message": message,
            "status": name,
            "details": [
                {
                    "@type": "type.googleapis.com/google.ads.googleads.v23.errors.GoogleAdsFailure",
                    "errors": [error],
                    "requestId": "req-test-1",
                }
            ],
        }
    }


def read(settings, name: str = "ad_performance", state: dict | None = None):
    """The batches one entity's reader yields, and the state it leaves."""
    state = {} if state is None else state
    config = mapping.load(settings.mapping_file).section("google_ads")
    with ExitStack() as stack:
        readers = google_ads.readers(settings, stack, config)
        batches = list(readers[name](entity(name), state, day_window(DAY)))
    return batches, state


def rows_of(batches) -> list[dict]:
    return sorted(
        (r for b in batches for r in b.table.to_pylist()), key=lambda r: tuple(map(str, r.values()))
    )


# --- paging, summing, money and conversions ---------------------------------------------------


def test_pages_are_read_to_the_last_and_segments_are_summed(tmp_path, google, waits):
    google.routes[SEARCH] = [
        (
            200,
            {
                "results": [result("2026-03-09", "11", 10, 1, 1_250_000, 0.5, device="MOBILE")],
                "nextPageToken": "p2",
            },
        ),
        (
            200,
            {
                "results": [result("2026-03-09", "11", 5, 2, 760_000, 1.25, device="DESKTOP")],
                "nextPageToken": "p3",
            },
        ),
        (200, {"results": [result("2026-03-10", "11", 7, 0, 0, 0.0)]}),
    ]
    batches, state = read(google_settings(tmp_path, google.url))
    assert [b.get("pageToken") for b in google.searches()] == [None, "p2", "p3"]
    rows = rows_of(batches)
    assert [(str(r["date"]), r["campaign_id"], r["impressions"], r["clicks"]) for r in rows] == [
        ("2026-03-09", "google_ads-11", 15, 3),
        ("2026-03-10", "google_ads-11", 7, 0),
    ]
    # micros of the account's currency, to the cent; fractional conversions kept
    assert rows[0]["spend"] == Decimal("2.01")
    assert rows[0]["platform_conversions"] == Decimal("1.75")
    assert state["last_date"] == DAY.isoformat()
    assert waits == []
    # the developer token and the manager account go with every search; the query is GAQL
    _, body, headers = next(r for r in google.requests if r[0] == SEARCH)
    assert headers["developer-token"] == "devtoken"
    assert headers["login-customer-id"] == MANAGER
    assert headers["Authorization"] == "Bearer at-1"
    assert "segments.date BETWEEN '2000-01-01' AND '2026-03-10'" in body["query"]


def test_a_page_token_served_twice_stops_the_load(tmp_path, google, waits):
    google.routes[SEARCH] = [(200, {"results": [], "nextPageToken": "same"})]
    with pytest.raises(SourceDataError, match="page token 'same' twice"):
        read(google_settings(tmp_path, google.url))


def test_a_page_without_results_is_an_empty_page(tmp_path, google, waits):
    google.routes[SEARCH] = [(200, {"fieldMask": "campaign.id", "requestId": "r"})]
    batches, _ = read(google_settings(tmp_path, google.url))
    assert rows_of(batches) == []


def test_an_account_in_a_currency_outside_the_contract_goes_to_quarantine(tmp_path, google, waits):
    google.routes[SEARCH] = [
        (200, {"results": [result("2026-03-09", "11", 1, 0, 10_000, 0, "GBP")]})
    ]
    batches, _ = read(google_settings(tmp_path, google.url))
    assert rows_of(batches) == []
    reasons = [r for b in batches for r in b.quarantined["reason"].to_pylist()]
    assert len(reasons) == 1
    assert "'GBP'" in reasons[0] and "google_ads.customer_ids" in reasons[0]
    assert CUSTOMER in reasons[0]


def test_accounts_in_two_currencies_keep_their_own(tmp_path, google, waits):
    other = f"/v23/customers/{OTHER}/googleAds:search"
    google.routes[SEARCH] = [(200, {"results": [result("2026-03-09", "11", 1, 0, 10_000, 0)]})]
    google.routes[other] = [
        (200, {"results": [result("2026-03-09", "12", 2, 0, 20_000, 0, "EUR")]})
    ]
    settings = google_settings(
        tmp_path,
        google.url,
        mapping_file=write_mapping(tmp_path / "two.yml", customer_ids=[CUSTOMER, "234-567-8901"]),
    )
    rows = rows_of(read(settings)[0])
    assert [(r["campaign_id"], r["currency"], r["spend"]) for r in rows] == [
        ("google_ads-11", "USD", Decimal("0.01")),
        ("google_ads-12", "EUR", Decimal("0.02")),
    ]


def test_campaigns_map_status_channel_type_dates_and_budget(tmp_path, google, waits):
    def campaign(cid, status, serving, kind, start, end, micros):
        return {
            "customer": {"currencyCode": "EUR"},
            "campaign": {
                "id": cid,
                "name": f"C {cid}",
                "status": status,
                "servingStatus": serving,
                "advertisingChannelType": kind,
                "startDateTime": start,
                "endDateTime": end,
            },
            "campaignBudget": {"amountMicros": micros},
        }

    google.routes[SEARCH] = [
        (
            200,
            {
                "results": [
                    campaign(
                        "1",
                        "ENABLED",
                        "SERVING",
                        "SEARCH",
                        "2026-01-05 00:00:00",
                        "2037-12-30 23:59:59",
                        "12500000",
                    ),
                    campaign(
                        "2",
                        "ENABLED",
                        "ENDED",
                        "VIDEO",
                        "2026-01-05 00:00:00",
                        "2026-02-01 23:59:59",
                        "5000000",
                    ),
                    campaign(
                        "3",
                        "PAUSED",
                        "SERVING",
                        "DISPLAY",
                        "2026-02-01 00:00:00",
                        "2037-12-30 23:59:59",
                        "1000000",
                    ),
                    campaign(
                        "4",
                        "REMOVED",
                        "SERVING",
                        "SEARCH",
                        "2026-02-01 00:00:00",
                        "2037-12-30 23:59:59",
                        "1000000",
                    ),
                ]
            },
        ),
    ]
    rows = rows_of(read(google_settings(tmp_path, google.url), "campaigns")[0])
    got = [
        (
            r["campaign_id"],
            r["status"],
            r["objective"],
            str(r["start_date"]),
            r["end_date"] and str(r["end_date"]),
            r["daily_budget"],
            r["currency"],
        )
        for r in rows
    ]
    assert got == [
        ("google_ads-1", "active", "acquisition", "2026-01-05", None, Decimal("12.50"), "EUR"),
        ("google_ads-2", "ended", "brand", "2026-01-05", "2026-02-01", Decimal("5.00"), "EUR"),
        ("google_ads-3", "paused", "acquisition", "2026-02-01", None, Decimal("1.00"), "EUR"),
        ("google_ads-4", "ended", "acquisition", "2026-02-01", None, Decimal("1.00"), "EUR"),
    ]
    query = google.searches()[0]["query"]
    assert "campaign.start_date_time" in query and "campaign_budget.amount_micros" in query


def test_versions_before_v23_ask_for_the_date_fields(tmp_path, google, waits):
    path = f"/v22/customers/{CUSTOMER}/googleAds:search"
    google.routes[path] = [(200, {})]
    read(google_settings(tmp_path, google.url, google_ads_api_version="v22"), "campaigns")
    query = google.searches(path)[0]["query"]
    assert "campaign.start_date," in query and "start_date_time" not in query


# --- throttling, errors -------------------------------------------------------------------------


def test_a_short_quota_wait_is_honoured_then_the_page_is_read(tmp_path, google, waits):
    quota = failure(
        429,
        "RESOURCE_EXHAUSTED",
        "quotaError",
        "RESOURCE_EXHAUSTED",
        "Too many",
        quotaErrorDetails={"retryDelay": "2s"},
    )
    google.routes[SEARCH] = [
        (429, quota),
        (429, quota),
        (200, {"results": [result("2026-03-09", "11", 1, 0, 0, 0)]}),
    ]
    batches, _ = read(google_settings(tmp_path, google.url))
    assert len(google.searches()) == 3
    assert waits == [2.0, 2.0]
    assert len(rows_of(batches)) == 1


def test_a_quota_wait_longer_than_the_backoff_stops_at_once_as_transient(tmp_path, google, waits):
    quota = failure(
        429,
        "RESOURCE_EXHAUSTED",
        "quotaError",
        "RESOURCE_EXHAUSTED",
        "Too many requests. Retry in 40000 seconds.",
        quotaErrorDetails={"retryDelay": "40000s"},
    )
    google.routes[SEARCH] = [(429, quota)]
    with pytest.raises(SourceUnavailableError, match="wait 11 h 6 min") as caught:
        read(google_settings(tmp_path, google.url))
    assert not is_permanent(caught.value)
    assert len(google.searches()) == 1 and waits == []


@pytest.mark.parametrize(
    ("status", "name", "kind", "code", "error", "named"),
    [
        (
            401,
            "UNAUTHENTICATED",
            "authenticationError",
            "NOT_ADS_USER",
            SourceConfigError,
            "OPS_GOOGLE_ADS_REFRESH_TOKEN",
        ),
        (
            403,
            "PERMISSION_DENIED",
            "authorizationError",
            "USER_PERMISSION_DENIED",
            SourceConfigError,
            "google_ads.login_customer_id",
        ),
        (
            403,
            "PERMISSION_DENIED",
            "authorizationError",
            "DEVELOPER_TOKEN_NOT_APPROVED",
            SourceConfigError,
            "OPS_GOOGLE_ADS_DEVELOPER_TOKEN",
        ),
        (
            400,
            "INVALID_ARGUMENT",
            "queryError",
            "UNRECOGNIZED_FIELD",
            SourceDataError,
            "FROM campaign",
        ),
    ],
)
def test_permanent_errors_fail_at_once_naming_what_to_fix(
    tmp_path, google, waits, status, name, kind, code, error, named
):
    google.routes[SEARCH] = [(status, failure(status, name, kind, code, f"says {code}"))]
    with pytest.raises(error) as caught:
        read(google_settings(tmp_path, google.url))
    message = str(caught.value)
    assert is_permanent(caught.value)
    assert f"{kind}: {code}" in message and named in message and "req-test-1" in message
    assert len(google.searches()) == 1 and waits == []


def test_an_expired_access_token_is_renewed_once(tmp_path, google, waits):
    expired = failure(401, "UNAUTHENTICATED", "authenticationError", "OAUTH_TOKEN_EXPIRED", "old")
    google.routes[SEARCH] = [(401, expired), (200, {})]
    google.token_replies = [
        (200, {"access_token": "at-1", "expires_in": 3599}),
        (200, {"access_token": "at-2", "expires_in": 3599}),
    ]
    read(google_settings(tmp_path, google.url))
    assert google.tokens() == 2
    assert [h["Authorization"] for p, _, h in google.requests if p == SEARCH] == [
        "Bearer at-1",
        "Bearer at-2",
    ]
    assert waits == []


def test_a_refused_refresh_token_names_the_settings(tmp_path, google, waits):
    google.token_replies = [(400, {"error": "invalid_grant", "error_description": "Bad Request"})]
    with pytest.raises(SourceConfigError, match="invalid_grant.*OPS_GOOGLE_ADS_REFRESH_TOKEN") as e:
        read(google_settings(tmp_path, google.url))
    assert "rtoken" not in str(e.value) and "csecret" not in str(e.value)
    assert google.searches() == []


def test_server_errors_are_retried_with_backoff(tmp_path, google, waits):
    internal = failure(500, "INTERNAL", "internalError", "INTERNAL_ERROR", "Internal error.")
    google.routes[SEARCH] = [(500, internal), (503, internal), (200, {})]
    read(google_settings(tmp_path, google.url))
    assert len(google.searches()) == 3 and waits == [0.5, 1.0]


def test_missing_credentials_name_every_missing_setting(tmp_path, google):
    settings = google_settings(
        tmp_path, google.url, google_ads_developer_token="", google_ads_client_secret=""
    )
    with pytest.raises(
        SourceConfigError,
        match="OPS_GOOGLE_ADS_CLIENT_SECRET, OPS_GOOGLE_ADS_DEVELOPER_TOKEN not set",
    ):
        read(settings)
    assert google.requests == []


# --- the mapping file -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"customer_ids": ["12-34"]}, r"google_ads\.customer_ids\[0\]"),
        ({"customer_ids": [CUSTOMER], "login_customer_id": "x"}, r"google_ads\.login_customer_id"),
        (
            {"customer_ids": [CUSTOMER], "campaign_id_format": "g-{name}"},
            r"google_ads\.campaign_id_format",
        ),
        (
            {"customer_ids": [CUSTOMER], "objectives": {"SEARCH": "sales"}},
            r"google_ads\.objectives\.SEARCH",
        ),
        (
            {"customer_ids": [CUSTOMER], "currency": "USD"},
            r"google_ads\.currency is not a known key",
        ),
    ],
)
def test_mapping_errors_name_the_key(section, key):
    with pytest.raises(mapping.MappingError, match=key):
        mapping.parse({"google_ads": section})


def test_without_customer_ids_the_load_stops_naming_the_key(tmp_path, google):
    (tmp_path / "empty.yml").write_text("google_ads: {}\n")
    settings = google_settings(tmp_path, google.url, mapping_file=tmp_path / "empty.yml")
    with pytest.raises(mapping.MappingError, match=r"google_ads\.customer_ids is required"):
        with ExitStack() as stack:
            ad_platforms.readers(settings, stack, {})
    assert google.requests == []


# --- restated days, end to end through the loader --------------------------------------------------


def test_restated_days_are_read_again_and_replace_the_first_numbers(tmp_path, google, waits):
    served = {"2026-03-08": 100, "2026-03-09": 100, "2026-03-10": 40}

    def search(body: dict) -> Reply:
        since, until = (
            body["query"].split("BETWEEN '")[1].split("'")[0],
            body["query"].split("AND '")[1].split("'")[0],
        )
        days = [d for d in sorted(served) if since <= d <= until]
        return 200, {"results": [result(d, "11", served[d], 1, 1_000_000, 0.5) for d in days]}

    google.routes[SEARCH] = search
    settings = google_settings(tmp_path, google.url, ad_lookback_days=3)
    entities = ["ad_performance"]
    load_source(
        "marketing", day_window(DAY - timedelta(days=1)), settings=settings, entities=entities
    )
    first = google.searches()[-1]["query"]
    assert "BETWEEN '2000-01-01' AND '2026-03-09'" in first
    served.update({"2026-03-08": 130, "2026-03-09": 160})  # the platform restates them
    load_source("marketing", day_window(DAY), settings=settings, entities=entities)
    second = google.searches()[-1]["query"]
    assert "BETWEEN '2026-03-07' AND '2026-03-10'" in second
    raw = {(str(r[0]), r[3]) for r in raw_snapshot(settings)["ad_performance"]}
    assert raw == {("2026-03-08", 130), ("2026-03-09", 160), ("2026-03-10", 40)}
