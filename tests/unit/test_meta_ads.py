"""The Meta Ads adapter (ops_warehouse.pipeline.sources.meta_ads) against a scripted Graph API.

Payloads are written for these tests in the Marketing API's shapes (numbers as text, the
``actions`` list, ``paging.cursors``/``paging.next``, error bodies with ``code`` and
``fbtrace_id``, usage headers holding JSON), with ids and numbers of our own. A small HTTP
server answers each path from a script and records every request.
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
from ops_warehouse.pipeline.sources import mapping, meta_ads
from tests.conftest import make_settings
from tests.helpers import day_window, raw_snapshot

ACCOUNT = "555000111"
DAY = date(2026, 3, 10)
VERSION = "v24.0"
INSIGHTS = f"/{VERSION}/act_{ACCOUNT}/insights"
CAMPAIGNS = f"/{VERSION}/act_{ACCOUNT}/campaigns"
ACCOUNT_PATH = f"/{VERSION}/act_{ACCOUNT}"
TOKEN = "meta-secret-token-42"

Reply = tuple[int, Any, dict[str, str]]


class FakeMeta:
    """Each path answers from its script: a list of replies taken in turn (the last one
    repeats) or a function of the query."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Callable[[dict[str, str]], Reply]] = {
            ACCOUNT_PATH: [(200, {"currency": "EUR", "timezone_name": "Europe/Berlin"}, {})]
        }
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                fake.requests.append((parts.path, query, dict(self.headers)))
                route = fake.routes.get(parts.path)
                if route is None:
                    status, body, headers = 404, {"error": {"code": 803, "message": "?"}}, {}
                elif callable(route):
                    status, body, headers = route(query)
                else:
                    status, body, headers = route.pop(0) if len(route) > 1 else route[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def asked(self, path: str) -> list[dict[str, str]]:
        return [q for p, q, _ in self.requests if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def meta():
    fake = FakeMeta()
    yield fake
    fake.close()


@pytest.fixture
def waits(monkeypatch):
    recorded: list[float] = []
    monkeypatch.setattr(meta_ads.MetaClient, "sleep", staticmethod(recorded.append))
    return recorded


def write_mapping(path: Path, **overrides: Any) -> Path:
    section = {
        "ad_account_ids": [f"act_{ACCOUNT}"],
        "conversion_action_types": ["offsite_conversion.fb_pixel_purchase", "lead"],
        "objectives": {"OUTCOME_ENGAGEMENT": "retargeting"},
        **overrides,
    }
    path.write_text(json.dumps({"meta_ads": section}))
    return path


def meta_settings(tmp_path: Path, url: str, **overrides: Any):
    values = dict(
        ad_platforms=("meta_ads",),
        mapping_file=write_mapping(tmp_path / "mapping.yml"),
        meta_api_url=url,
        meta_api_version=VERSION,
        meta_access_token=TOKEN,
        http_backoff_max_s=5.0,
        http_max_attempts=4,
        page_size=2,
    )
    return make_settings(tmp_path / "home", tmp_path, url, **{**values, **overrides})


def insight(day: str, campaign: str, spend: str, impressions: str, clicks: str, **extra) -> dict:
    return {
        "campaign_id": campaign,
        "campaign_name": f"Campaign {campaign}",
        "spend": spend,
        "impressions": impressions,
        "clicks": clicks,
        "date_start": day,
        "date_stop": day,
        "account_currency": "EUR",
        **extra,
    }


def page(data: list[dict], after: str | None, last: bool) -> dict:
    body: dict[str, Any] = {"data": data}
    if after is not None:
        body["paging"] = {"cursors": {"before": "b", "after": after}}
        if not last:
            body["paging"]["next"] = (
                f"https://graph.example/{VERSION}/x?access_token=T&after={after}"
            )
    return body


def throttled(code: int, regain_minutes: float | None = None) -> Reply:
    headers = {}
    if regain_minutes is not None:
        usage = {
            ACCOUNT: [
                {
                    "type": "ads_insights",
                    "call_count": 100,
                    "total_cputime": 20,
                    "total_time": 20,
                    "estimated_time_to_regain_access": regain_minutes,
                }
            ]
        }
        headers["x-business-use-case-usage"] = json.dumps(usage)
    body = {
        "error": {
            "message": f"(#{code}) too many calls",
            "type": "OAuthException",
            "code": code,
            "error_subcode": 2446079,
            "fbtrace_id": "trace-xyz",
        }
    }
    return 400, body, headers


def read(settings, name: str = "ad_performance", state: dict | None = None):
    state = {} if state is None else state
    config = mapping.load(settings.mapping_file).section("meta_ads")
    with ExitStack() as stack:
        readers = meta_ads.readers(settings, stack, config)
        batches = list(readers[name](entity(name), state, day_window(DAY)))
    return batches, state


def rows_of(batches) -> list[dict]:
    return sorted(
        (r for b in batches for r in b.table.to_pylist()), key=lambda r: tuple(map(str, r.values()))
    )


# --- paging, numbers, conversions ------------------------------------------------------------


def test_pages_are_read_to_the_one_without_next(tmp_path, meta, waits):
    meta.routes[INSIGHTS] = [
        (200, page([insight("2026-03-09", "71", "1.20", "100", "3")], "c1", last=False), {}),
        (200, page([insight("2026-03-10", "71", "0.80", "50", "1")], "c2", last=False), {}),
        (200, page([insight("2026-03-10", "72", "0", "0", "0")], "c3", last=True), {}),
    ]
    batches, state = read(meta_settings(tmp_path, meta.url))
    asked = meta.asked(INSIGHTS)
    assert [q.get("after") for q in asked] == [None, "c1", "c2"]
    assert asked[0]["level"] == "campaign" and asked[0]["time_increment"] == "1"
    assert json.loads(asked[0]["time_range"]) == {"since": "2023-02-24", "until": "2026-03-10"}
    assert asked[0]["limit"] == "2" and "actions" in asked[0]["fields"]
    # the token goes in the header, never in a URL
    assert all("access_token" not in q for q in asked)
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for _, _, h in meta.requests)
    rows = rows_of(batches)
    assert [
        (str(r["date"]), r["campaign_id"], r["impressions"], r["clicks"], r["spend"]) for r in rows
    ] == [
        ("2026-03-09", "meta_ads-71", 100, 3, Decimal("1.20")),
        ("2026-03-10", "meta_ads-71", 50, 1, Decimal("0.80")),
        ("2026-03-10", "meta_ads-72", 0, 0, Decimal("0.00")),
    ]
    assert {r["currency"] for r in rows} == {"EUR"}
    assert state["last_date"] == DAY.isoformat() and waits == []


def test_a_cursor_served_twice_stops_the_load(tmp_path, meta, waits):
    meta.routes[INSIGHTS] = [(200, page([], "same", last=False), {})]
    with pytest.raises(SourceDataError, match="'after' cursor 'same'"):
        read(meta_settings(tmp_path, meta.url))


def test_conversions_are_the_named_action_types_fractions_kept(tmp_path, meta, waits):
    actions = [
        {"action_type": "link_click", "value": "9"},
        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "2.5"},
        {"action_type": "lead", "value": "1"},
    ]
    meta.routes[INSIGHTS] = [
        (
            200,
            page(
                [
                    insight("2026-03-09", "71", "1.00", "10", "9", actions=actions),
                    insight("2026-03-09", "72", "1.00", "10", "0"),  # no actions key: none
                ],
                None,
                last=True,
            ),
            {},
        ),
    ]
    rows = rows_of(read(meta_settings(tmp_path, meta.url))[0])
    assert [r["platform_conversions"] for r in rows] == [Decimal("3.50"), Decimal("0.00")]


def test_ad_level_rows_are_summed_into_campaign_days(tmp_path, meta, waits):
    meta.routes[INSIGHTS] = [
        (
            200,
            page(
                [
                    insight("2026-03-09", "71", "0.71", "489", "0", ad_id="1"),
                    insight("2026-03-09", "71", "1.09", "839", "1", ad_id="2"),
                ],
                None,
                last=True,
            ),
            {},
        ),
    ]
    rows = rows_of(read(meta_settings(tmp_path, meta.url))[0])
    assert [(r["impressions"], r["clicks"], r["spend"]) for r in rows] == [
        (1328, 1, Decimal("1.80"))
    ]


def test_text_that_is_no_number_goes_to_quarantine_naming_it(tmp_path, meta, waits):
    meta.routes[INSIGHTS] = [
        (200, page([insight("2026-03-09", "71", "n/a", "5", "1")], None, True), {})
    ]
    batches, _ = read(meta_settings(tmp_path, meta.url))
    reasons = [r for b in batches for r in b.quarantined["reason"].to_pylist()]
    assert len(reasons) == 1 and "'spend'" in reasons[0] and "n/a" in reasons[0]


def test_an_account_in_a_currency_outside_the_contract_goes_to_quarantine(tmp_path, meta, waits):
    meta.routes[ACCOUNT_PATH] = [
        (200, {"currency": "BRL", "timezone_name": "America/Sao_Paulo"}, {})
    ]
    row = insight("2026-03-09", "71", "1.00", "5", "1", account_currency="BRL")
    meta.routes[INSIGHTS] = [(200, page([row], None, True), {})]
    batches, _ = read(meta_settings(tmp_path, meta.url))
    reasons = [r for b in batches for r in b.quarantined["reason"].to_pylist()]
    assert len(reasons) == 1
    assert "'BRL'" in reasons[0] and "meta_ads.ad_account_ids" in reasons[0]


def test_campaigns_map_objective_status_budget_and_times(tmp_path, meta, waits):
    meta.routes[CAMPAIGNS] = [
        (
            200,
            page(
                [
                    {
                        "id": "71",
                        "name": "Spring",
                        "objective": "OUTCOME_SALES",
                        "status": "ACTIVE",
                        "daily_budget": "2550",
                        "start_time": "2026-03-01T00:00:00+0100",
                        "updated_time": "2026-03-05T01:30:00+0100",
                    },
                    {
                        "id": "72",
                        "name": "Brand",
                        "objective": "OUTCOME_AWARENESS",
                        "status": "ARCHIVED",
                        "lifetime_budget": "900000",
                        "start_time": "2026-01-01T09:00:00+0100",
                        "stop_time": "2026-01-31T23:59:59+0100",
                        "updated_time": "2026-02-01T00:10:00+0100",
                    },
                    {
                        "id": "73",
                        "name": "Engage",
                        "objective": "OUTCOME_ENGAGEMENT",
                        "status": "PAUSED",
                        "daily_budget": "1000",
                        "start_time": "2026-02-01T00:00:00+0100",
                        "updated_time": "2026-02-02T00:00:00+0100",
                    },
                ],
                None,
                last=True,
            ),
            {},
        ),
    ]
    rows = rows_of(read(meta_settings(tmp_path, meta.url), "campaigns")[0])
    got = [
        (
            r["campaign_id"],
            r["objective"],
            r["status"],
            str(r["start_date"]),
            r["end_date"] and str(r["end_date"]),
            r["daily_budget"],
            r["currency"],
            r["updated_at"].isoformat(),
        )
        for r in rows
    ]
    assert got == [
        (
            "meta_ads-71",
            "acquisition",
            "active",
            "2026-03-01",
            None,
            Decimal("25.50"),
            "EUR",
            "2026-03-05T00:30:00+00:00",
        ),
        (
            "meta_ads-72",
            "brand",
            "ended",
            "2026-01-01",
            "2026-01-31",
            Decimal("0.00"),
            "EUR",
            "2026-01-31T23:10:00+00:00",
        ),
        (
            "meta_ads-73",
            "retargeting",
            "paused",
            "2026-02-01",
            None,
            Decimal("10.00"),
            "EUR",
            "2026-02-01T23:00:00+00:00",
        ),
    ]
    assert "ARCHIVED" in meta.asked(CAMPAIGNS)[0]["effective_status"]


# --- throttling and errors ------------------------------------------------------------------


def test_throttling_codes_wait_what_the_usage_headers_say(tmp_path, meta, waits):
    ok = (200, page([insight("2026-03-09", "71", "1.00", "5", "1")], None, True), {})
    meta.routes[INSIGHTS] = [
        throttled(80004, regain_minutes=0.05),
        throttled(17),
        throttled(613),
        ok,
    ]
    rows = rows_of(read(meta_settings(tmp_path, meta.url))[0])
    assert len(rows) == 1
    assert len(meta.asked(INSIGHTS)) == 4
    # 3 s from estimated_time_to_regain_access, then backoff (no header)
    assert waits == [pytest.approx(3.0), 1.0, 2.0]


def test_a_throttle_longer_than_the_backoff_stops_at_once_as_transient(tmp_path, meta, waits):
    meta.routes[INSIGHTS] = [throttled(80004, regain_minutes=30)]
    with pytest.raises(SourceUnavailableError, match="wait 1800 s") as caught:
        read(meta_settings(tmp_path, meta.url))
    assert not is_permanent(caught.value)
    assert len(meta.asked(INSIGHTS)) == 1 and waits == []


def test_a_full_usage_header_on_a_good_answer_makes_the_next_request_wait(tmp_path, meta, waits):
    usage = json.dumps({"call_count": 100, "total_cputime": 12, "total_time": 40})
    meta.routes[INSIGHTS] = [
        (
            200,
            page([insight("2026-03-09", "71", "1.00", "5", "1")], "c1", last=False),
            {"x-app-usage": usage},
        ),
        (200, page([insight("2026-03-10", "71", "1.00", "5", "1")], "c2", last=True), {}),
    ]
    rows = rows_of(read(meta_settings(tmp_path, meta.url))[0])
    assert len(rows) == 2 and waits == [0.5]


@pytest.mark.parametrize(
    ("status", "code", "error", "named"),
    [
        (400, 190, SourceConfigError, "OPS_META_ACCESS_TOKEN"),
        (400, 200, SourceConfigError, "meta_ads.ad_account_ids"),
        (400, 10, SourceConfigError, "meta_ads.ad_account_ids"),
        (400, (100, 33), SourceConfigError, "meta_ads.ad_account_ids"),
        (400, 100, SourceDataError, "insights"),
    ],
)
def test_permanent_errors_fail_at_once_naming_what_to_fix(
    tmp_path, meta, waits, status, code, error, named
):
    code, subcode = code if isinstance(code, tuple) else (code, None)
    body = {
        "error": {
            "message": f"(#{code}) refused",
            "type": "OAuthException",
            "code": code,
            "error_subcode": subcode,
            "fbtrace_id": "trace-abc",
        }
    }
    meta.routes[INSIGHTS] = [(status, body, {})]
    with pytest.raises(error) as caught:
        read(meta_settings(tmp_path, meta.url))
    message = str(caught.value)
    assert is_permanent(caught.value)
    assert named in message and f"#{code}" in message and "trace-abc" in message
    assert TOKEN not in message
    assert len(meta.asked(INSIGHTS)) == 1 and waits == []


def test_an_unknown_error_of_meta_is_retried(tmp_path, meta, waits):
    unknown = {
        "error": {"message": "An unknown error occurred", "code": 1, "type": "OAuthException"}
    }
    meta.routes[INSIGHTS] = [
        (500, unknown, {}),
        (400, {**unknown, "error": {**unknown["error"], "code": 2}}, {}),
        (200, page([], None, True), {}),
    ]
    read(meta_settings(tmp_path, meta.url))
    assert len(meta.asked(INSIGHTS)) == 3 and waits == [0.5, 1.0]


def test_missing_token_names_the_setting(tmp_path, meta):
    with pytest.raises(SourceConfigError, match="OPS_META_ACCESS_TOKEN is not set"):
        read(meta_settings(tmp_path, meta.url, meta_access_token=""))
    assert meta.requests == []


# --- the mapping file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"ad_account_ids": ["act_x1"]}, r"meta_ads\.ad_account_ids\[0\]"),
        ({"conversion_action_types": "purchase"}, r"meta_ads\.conversion_action_types"),
        ({"objectives": {"OUTCOME_SALES": "sales"}}, r"meta_ads\.objectives\.OUTCOME_SALES"),
        ({"campaign_id_format": "{id}-{id}"}, r"meta_ads\.campaign_id_format"),
    ],
)
def test_mapping_errors_name_the_key(section, key):
    with pytest.raises(mapping.MappingError, match=key):
        mapping.parse({"meta_ads": section})


def test_without_conversion_types_the_load_stops_naming_the_key(tmp_path, meta):
    settings = meta_settings(
        tmp_path,
        meta.url,
        mapping_file=write_mapping(tmp_path / "m.yml", conversion_action_types=[]),
    )
    with pytest.raises(
        mapping.MappingError, match=r"meta_ads\.conversion_action_types is required"
    ):
        read(settings)
    assert meta.requests == []


def test_the_same_campaign_id_format_on_both_platforms_is_refused(tmp_path, meta):
    both = tmp_path / "both.yml"
    both.write_text(
        json.dumps(
            {
                "meta_ads": {
                    "ad_account_ids": [ACCOUNT],
                    "conversion_action_types": ["lead"],
                    "campaign_id_format": "c-{id}",
                },
                "google_ads": {"customer_ids": ["1234567890"], "campaign_id_format": "c-{id}"},
            }
        )
    )
    settings = meta_settings(
        tmp_path,
        meta.url,
        mapping_file=both,
        ad_platforms=("google_ads", "meta_ads"),
        google_ads_client_id="a",
        google_ads_client_secret="b",
        google_ads_refresh_token="c",
        google_ads_developer_token="d",
    )
    with pytest.raises(mapping.MappingError, match="unique across platforms"):
        load_source("marketing", day_window(DAY), settings=settings, entities=["campaigns"])
    assert meta.requests == []


# --- restated days through the loader ----------------------------------------------------------


def test_restated_days_are_read_again(tmp_path, meta, waits):
    served = {"2026-03-08": "100", "2026-03-09": "100", "2026-03-10": "40"}

    def insights(query: dict[str, str]) -> Reply:
        span = json.loads(query["time_range"])
        data = [
            insight(d, "71", "1.00", n, "1")
            for d, n in sorted(served.items())
            if span["since"] <= d <= span["until"]
        ]
        return 200, page(data, None, True), {}

    meta.routes[INSIGHTS] = insights
    settings = meta_settings(tmp_path, meta.url, ad_lookback_days=2, page_size=100)
    entities = ["ad_performance"]
    load_source(
        "marketing", day_window(DAY - timedelta(days=1)), settings=settings, entities=entities
    )
    served.update({"2026-03-09": "175"})
    load_source("marketing", day_window(DAY), settings=settings, entities=entities)
    spans = [json.loads(q["time_range"]) for q in meta.asked(INSIGHTS)]
    assert spans[-1] == {"since": "2026-03-08", "until": "2026-03-10"}
    raw = {(str(r[0]), r[3]) for r in raw_snapshot(settings)["ad_performance"]}
    assert raw == {("2026-03-08", 100), ("2026-03-09", 175), ("2026-03-10", 40)}
