"""The demo source server over real HTTP on loopback, with small hand-written worlds."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops_demo.server import DemoServer, _is_loopback
from ops_warehouse.pipeline.contracts import API_ENDPOINTS, entity

MKT, SUP = "mkt-token", "sup-token"
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
D0 = date(2026, 3, 1)

# --- a small world ---------------------------------------------------------------------

ARROW = {
    "text": pa.string(),
    "int": pa.int64(),
    "decimal": pa.float64(),
    "float": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "bool": pa.bool_(),
}


def table_of(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as a parquet-ready table with exactly the contract's columns and types."""
    fields = entity(name).fields
    schema = pa.schema([(f.name, ARROW[f.type]) for f in fields])
    return pa.Table.from_pylist(rows, schema=schema)


def world_rows(n_tickets: int = 23) -> dict[str, list[dict[str, Any]]]:
    """Rows per entity, written in scrambled order, with ties on every time key."""
    tickets = [
        {
            "ticket_id": i,
            "requester_email": f"user{i}@example.com",
            "subject": f"help {i}",
            "category": "billing",
            "channel": "email",
            "priority": "normal",
            "status": "open",
            "assignee_id": None if i % 4 == 0 else 100 + i % 3,
            "created_at": T0,
            "updated_at": T0 + timedelta(minutes=i // 3),  # three tickets per minute
        }
        for i in range(n_tickets, 0, -1)
    ]
    tickets[-1]["subject"] = 'Say "hi"\nto Zoë \\ 東京'
    events = [
        {
            "event_id": i,
            "ticket_id": 1 + i % 5,
            "created_at": T0 + timedelta(seconds=10 * (i // 4)),
            "event_type": "comment",
            "author_role": "agent",
            "is_public": [True, False, None][i % 3],
            "new_status": None,
            "score": None,
        }
        for i in range(40, 0, -1)
    ]
    entries = [
        {
            "time_entry_id": i,
            "ticket_id": 1 + i % 7,
            "agent_id": 100 + i % 3,
            "minutes": i * 5,
            "logged_at": T0 + timedelta(hours=i // 2),
        }
        for i in range(1, 16)
    ]
    agents = [
        {
            "agent_id": 100,
            "agent_name": "Ada",
            "team": "tier1",
            "hourly_cost": 12.3,
            "currency": "USD",
            "active": True,
        },
        {
            "agent_id": 101,
            "agent_name": "Bo",
            "team": "tier1",
            "hourly_cost": 0.0,
            "currency": "EUR",
            "active": False,
        },
        {
            "agent_id": 102,
            "agent_name": "Cy",
            "team": "tier2",
            "hourly_cost": 1234.5,
            "currency": "CNY",
            "active": True,
        },
        {
            "agent_id": 103,
            "agent_name": "Di",
            "team": "tier2",
            "hourly_cost": None,
            "currency": "USD",
            "active": None,
        },
    ]
    campaigns = [
        {
            "campaign_id": f"gads-{i:04d}",
            "campaign_name": f"Campaign {i}",
            "channel": "google_ads",
            "objective": "acquisition",
            "status": "active",
            "start_date": D0 - timedelta(days=30),
            "end_date": None if i % 2 else D0 + timedelta(days=i),
            "daily_budget": 100.05 * i,
            "currency": "USD",
            "updated_at": T0,
        }
        for i in (7, 3, 5, 1, 2, 6, 4)
    ]
    signups = [
        {
            "signup_id": f"s{i:03d}",
            "customer_id": f"c{i:03d}",
            "email": f"c{i}@example.com",
            "signed_up_at": T0,
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": None if i % 3 else "gads-0001",
            "landing_page": "/",
            "updated_at": T0 + timedelta(hours=i // 4),
        }
        for i in range(20, 0, -1)
    ]
    ads = [
        {
            "date": D0 + timedelta(days=d),
            "channel": "google_ads",
            "campaign_id": f"gads-{c:04d}",
            "impressions": 1000 + d,
            "clicks": 10 + c,
            "spend": 12.3 + d,
            "currency": "USD",
            "platform_conversions": c,
        }
        for d in (4, 0, 2, 1, 3)
        for c in (3, 1, 2)
    ]
    return {
        "tickets": tickets,
        "ticket_events": events,
        "time_entries": entries,
        "agents": agents,
        "campaigns": campaigns,
        "signups": signups,
        "ad_performance": ads,
    }


def write_world(root: Path, rows: dict[str, list[dict[str, Any]]], until: str) -> None:
    """Write the world the way the generator does: each file replaced atomically."""
    (root / "api").mkdir(parents=True, exist_ok=True)
    for name, entity_rows in rows.items():
        tmp = root / "api" / f".{name}.parquet.tmp"
        pq.write_table(table_of(name, entity_rows), tmp)
        os.replace(tmp, root / "api" / f"{name}.parquet")
    tmp = root / ".world.json.tmp"
    tmp.write_text(json.dumps({"until": until, "seed": 1}))
    os.replace(tmp, root / "world.json")


@pytest.fixture
def world(tmp_path: Path) -> Path:
    write_world(tmp_path, world_rows(), "2026-03-05")
    return tmp_path


@pytest.fixture
def server(world: Path):
    with DemoServer(world, marketing_token=MKT, support_token=SUP) as srv:
        yield srv


# --- a tiny client ---------------------------------------------------------------------


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    token: str | None = None,
    params: dict[str, Any] | None = None,
    data: Any = None,
    timeout: float = 10,
) -> Response:
    if params:
        url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if data is not None:
        body, headers["Content-Type"] = json.dumps(data).encode(), "application/json"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def token_for(name: str) -> str:
    return MKT if entity(name).source == "marketing" else SUP


def get(server: DemoServer, name: str, **params: Any) -> Response:
    return call(server.url + API_ENDPOINTS[name][0], token_for(name), params)


def drain(server: DemoServer, name: str, **params: Any) -> list[dict[str, Any]]:
    """Every row of a stream, following tokens/cursors to the end."""
    key = API_ENDPOINTS[name][1]
    rows: list[dict[str, Any]] = []
    for _ in range(10_000):
        r = get(server, name, **params)
        assert r.status == 200, r.body
        body = r.json
        rows += body[key]
        if "next_page_token" in body:
            if body["next_page_token"] is None:
                return rows
            params["page_token"] = body["next_page_token"]
        elif "end_of_stream" in body:
            assert isinstance(body["after_cursor"], str)
            if body["end_of_stream"]:
                return rows
            params["cursor"] = body["after_cursor"]
            params.pop("start_time", None)
        else:
            return rows
    raise AssertionError(f"{name} never ended")


STREAM_KEYS = {  # (time or first sort field, id) of each paged entity
    "ad_performance": ("date", "campaign_id"),
    "campaigns": (None, "campaign_id"),
    "signups": ("updated_at", "signup_id"),
    "tickets": ("updated_at", "ticket_id"),
    "ticket_events": ("created_at", "event_id"),
    "time_entries": ("logged_at", "time_entry_id"),
}


def sort_key(name: str, row: dict[str, Any]) -> tuple:
    first, ident = STREAM_KEYS[name]
    return (row[first] if first else "", row[ident])


def unix(ts: datetime) -> int:
    return int(ts.timestamp())


# --- pagination ------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("name", list(STREAM_KEYS))
def test_paging_serves_every_row_once_in_order(server, name, page_size):
    pk = entity(name).primary_key
    expected = sorted(tuple(str(r[k]) for k in pk) for r in world_rows()[name])
    rows = drain(server, name, page_size=page_size)
    keys = [tuple(str(r[k]) for k in pk) for r in rows]
    assert sorted(keys) == expected
    assert len(keys) == len(set(keys))
    assert [sort_key(name, r) for r in rows] == sorted(sort_key(name, r) for r in rows)


def test_pages_hold_at_most_page_size_rows_and_the_last_page_says_so(server):
    pages = []
    params: dict[str, Any] = {"page_size": 10, "start_time": 0}
    for _ in range(10):
        body = get(server, "ticket_events", **params).json
        pages.append(body)
        if body["end_of_stream"]:
            break
        params = {"page_size": 10, "cursor": body["after_cursor"]}
    assert [len(p["ticket_events"]) for p in pages] == [10, 10, 10, 10]
    assert [p["end_of_stream"] for p in pages] == [False, False, False, True]
    marketing = get(server, "campaigns", page_size=7).json  # exactly fills: no extra page
    assert len(marketing["data"]) == 7 and marketing["next_page_token"] is None


def test_agents_come_in_one_page(server):
    body = get(server, "agents", page_size=1).json
    assert set(body) == {"agents"}
    assert [a["agent_id"] for a in body["agents"]] == [100, 101, 102, 103]


def test_page_size_is_validated_and_capped(server):
    assert get(server, "tickets", page_size=0).status == 400
    assert get(server, "tickets", page_size="ten").status == 400
    body = get(server, "tickets", page_size=50_000).json
    assert len(body["tickets"]) == 23 and body["end_of_stream"] is True


# --- filters ---------------------------------------------------------------------------


def test_start_time_is_inclusive(server):
    start = T0 + timedelta(minutes=2)  # tickets 6, 7, 8 were updated exactly then
    rows = drain(server, "tickets", start_time=unix(start), page_size=2)
    assert sorted(r["ticket_id"] for r in rows) == list(range(6, 24))
    assert rows[0]["updated_at"] == "2026-03-01T09:32:00Z"


def test_cursor_takes_precedence_over_start_time(server):
    first = get(server, "tickets", start_time=0, page_size=5).json
    assert [t["ticket_id"] for t in first["tickets"]] == [1, 2, 3, 4, 5]
    later = unix(T0 + timedelta(minutes=6))
    nxt = get(server, "tickets", cursor=first["after_cursor"], start_time=later, page_size=3).json
    assert [t["ticket_id"] for t in nxt["tickets"]] == [6, 7, 8]


def test_empty_page_keeps_the_cursor_and_ends_the_stream(server):
    body = get(server, "tickets", start_time=unix(T0 + timedelta(days=1))).json
    assert body == {"tickets": [], "after_cursor": body["after_cursor"], "end_of_stream": True}
    assert isinstance(body["after_cursor"], str) and body["after_cursor"]
    again = get(server, "tickets", cursor=body["after_cursor"]).json
    assert again["tickets"] == [] and again["after_cursor"] == body["after_cursor"]


def test_ticket_events_and_time_entries_filter_on_their_own_time_field(server):
    events = drain(server, "ticket_events", start_time=unix(T0 + timedelta(seconds=30)))
    assert sorted(e["event_id"] for e in events) == list(range(12, 41))  # 10 s per 4 events
    entries = drain(server, "time_entries", start_time=unix(T0 + timedelta(hours=7)))
    assert sorted(e["time_entry_id"] for e in entries) == [14, 15]


def test_updated_since_is_inclusive_and_accepts_iso_forms(server):
    since = T0 + timedelta(hours=3)  # signups 12..15 were updated exactly then
    expected = [f"s{i:03d}" for i in range(12, 21)]
    for value in ("2026-03-01T12:30:00Z", "2026-03-01T12:30:00+00:00", "2026-03-01T13:30:00+01:00"):
        rows = drain(server, "signups", updated_since=value, page_size=4)
        assert sorted(r["signup_id"] for r in rows) == expected, value
    # an unencoded "+" decodes to a space; still understood
    url = server.url + "/marketing/v1/signups?updated_since=2026-03-01T12:30:00+00:00"
    assert len(call(url, MKT).json["data"]) == len(expected)
    assert drain(server, "signups", updated_since=since.isoformat())[0]["signup_id"] == "s012"


def test_ad_performance_date_window_is_inclusive(server):
    rows = drain(
        server, "ad_performance", start_date="2026-03-02", end_date="2026-03-03", page_size=4
    )
    assert [(r["date"], r["campaign_id"]) for r in rows] == [
        (d, f"gads-000{c}") for d in ("2026-03-02", "2026-03-03") for c in (1, 2, 3)
    ]
    tail = drain(server, "ad_performance", start_date="2026-03-05")
    assert {r["date"] for r in tail} == {"2026-03-05"} and len(tail) == 3
    head = drain(server, "ad_performance", end_date="2026-03-01", page_size=2)
    assert {r["date"] for r in head} == {"2026-03-01"} and len(head) == 3


@pytest.mark.parametrize(
    "name, params",
    [
        ("ad_performance", {"start_date": "2026-13-01"}),
        ("ad_performance", {"end_date": "yesterday"}),
        ("ad_performance", {"start_date": "2026-03-04", "end_date": "2026-03-01"}),
        ("signups", {"updated_since": "not-a-time"}),
        ("tickets", {"start_time": "noon"}),
        ("tickets", {"cursor": "!!!"}),
        ("tickets", {"cursor": "eyJ4IjoxfQ"}),  # valid base64 JSON, not our token
        ("campaigns", {"page_token": "garbage"}),
    ],
)
def test_bad_parameters_get_400_with_a_message(server, name, params):
    r = get(server, name, **params)
    assert r.status == 400
    assert r.headers["Content-Type"] == "application/json"
    assert r.json["error"]


def test_a_cursor_of_one_stream_is_refused_by_another(server):
    cursor = get(server, "tickets", page_size=2).json["after_cursor"]
    r = get(server, "ticket_events", cursor=cursor)
    assert r.status == 400 and "tickets" in r.json["error"]


# --- auth ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(API_ENDPOINTS))
def test_wrong_or_missing_token_gets_401(server, name):
    path = server.url + API_ENDPOINTS[name][0]
    other = SUP if entity(name).source == "marketing" else MKT
    for token in (None, "nope", other):
        r = call(path, token)
        assert r.status == 401 and r.json == {"error": "invalid token"}
    assert call(path, token_for(name)).status == 200


def test_unknown_path_is_404(server):
    assert call(server.url + "/marketing/v1/nothing", MKT).status == 404


# --- serialization ---------------------------------------------------------------------


def test_serialization_formats(server):
    r = get(server, "agents")
    assert r.headers["Content-Type"] == "application/json"
    agents = r.json["agents"]
    assert [a["hourly_cost"] for a in agents] == ["12.30", "0.00", "1234.50", None]
    assert [a["active"] for a in agents] == [True, False, True, None]
    assert isinstance(agents[0]["agent_id"], int)

    tickets = {t["ticket_id"]: t for t in drain(server, "tickets")}
    assert tickets[1]["subject"] == 'Say "hi"\nto Zoë \\ 東京'
    assert tickets[4]["assignee_id"] is None and tickets[5]["assignee_id"] == 102
    assert tickets[5]["updated_at"] == "2026-03-01T09:31:00Z"
    assert tickets[5]["created_at"] == "2026-03-01T09:30:00Z"

    events = {e["event_id"]: e for e in drain(server, "ticket_events")}
    assert [events[i]["is_public"] for i in (3, 4, 5)] == [True, False, None]
    assert events[3]["new_status"] is None

    campaigns = {c["campaign_id"]: c for c in drain(server, "campaigns")}
    assert campaigns["gads-0003"]["daily_budget"] == "300.15"
    assert campaigns["gads-0003"]["end_date"] is None
    assert campaigns["gads-0002"]["end_date"] == "2026-03-03"
    assert campaigns["gads-0002"]["start_date"] == "2026-01-30"
    assert list(campaigns["gads-0002"]) == entity("campaigns").field_names


def test_fractional_seconds_nan_money_and_extra_columns(tmp_path):
    rows = world_rows()
    rows["agents"][0]["hourly_cost"] = float("nan")
    write_world(tmp_path, rows, "2026-03-05")
    tickets = table_of("tickets", rows["tickets"])
    stamps = tickets.column("updated_at").to_pylist()
    stamps[-1] = T0 + timedelta(microseconds=500_000)  # ticket 1
    tickets = tickets.set_column(9, "updated_at", pa.array(stamps, ARROW["timestamp"]))
    tickets = tickets.append_column("tags", pa.array([["a"]] * tickets.num_rows))
    pq.write_table(tickets, tmp_path / "api" / "tickets.parquet")
    with DemoServer(tmp_path, marketing_token=MKT, support_token=SUP) as srv:
        assert get(srv, "agents").json["agents"][0]["hourly_cost"] is None
        first = {t["ticket_id"]: t for t in drain(srv, "tickets")}[1]
        assert first["updated_at"] == "2026-03-01T09:30:00.500000Z"
        assert first["tags"] == ["a"]
        assert list(first)[-1] == "tags"


# --- reloading -------------------------------------------------------------------------


def test_reload_after_the_world_advances_and_old_cursors_stay_valid(world, server):
    first = get(server, "tickets", page_size=20).json
    assert len(first["tickets"]) == 20 and not first["end_of_stream"]
    assert server.stats()["world"]["meta"]["until"] == "2026-03-05"

    rows = world_rows(n_tickets=30)  # seven new tickets, later than all others
    rows["tickets"] = [t for t in rows["tickets"] if t["ticket_id"] != 2]  # ignored by cursor
    time.sleep(0.01)  # a distinct mtime even on coarse clocks (size changes anyway)
    write_world(world, rows, "2026-03-06")

    rest = drain(server, "tickets", cursor=first["after_cursor"], page_size=4)
    assert [t["ticket_id"] for t in rest] == list(range(21, 31))
    assert len(drain(server, "tickets")) == 29
    stats = server.stats()
    assert stats["world"]["meta"]["until"] == "2026-03-06"
    assert stats["reloads"]["tickets"] == 2


def test_a_warm_server_reads_every_entity_before_the_first_request(world):
    rows = world_rows()
    with DemoServer(world, marketing_token=MKT, support_token=SUP) as srv:
        warmed = srv.warm()
        assert warmed == {name: len(entity_rows) for name, entity_rows in rows.items()}
        assert srv.stats()["reloads"] == dict.fromkeys(rows, 1)
        assert len(drain(srv, "tickets", page_size=7)) == len(rows["tickets"])
        assert srv.stats()["reloads"]["tickets"] == 1  # the first request read nothing


def test_missing_world_gets_503_naming_the_directory(tmp_path):
    with DemoServer(tmp_path / "nowhere", marketing_token=MKT, support_token=SUP) as srv:
        r = get(srv, "tickets")
        assert r.status == 503 and "nowhere" in r.json["error"]


# --- fault injection -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500", "502", "503"])
def test_each_fault_kind_happens_at_the_configured_rate(server, kind):
    server.configure(fault_rate=0.3, faults=[kind], seed=7, retry_after_s=3)
    statuses = Counter()
    for _ in range(300):
        r = get(server, "campaigns")
        statuses[r.status] += 1
        if r.status == 429:
            assert r.headers["Retry-After"] == "3"
        if r.status != 200:
            assert "injected" in r.json["error"]
    assert set(statuses) == {200, int(kind)}
    assert 0.22 <= statuses[int(kind)] / 300 <= 0.38
    stats = server.stats()
    assert stats["faults"] == {kind: statuses[int(kind)]}
    assert stats["requests"]["campaigns"] == 300


def test_faults_mix_kinds_and_are_reproducible_with_a_seed(server):
    def run() -> list[int]:
        server.configure(fault_rate=0.5, faults=["429", "500", "502", "503"], seed=42)
        return [get(server, "agents").status for _ in range(80)]

    first = run()
    assert run() == first
    assert set(first) == {200, 429, 500, 502, 503}


def test_timeout_fault_outlasts_the_client_timeout(server):
    server.configure(fault_rate=1.0, faults=["timeout"], timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        call(server.url + API_ENDPOINTS["tickets"][0], SUP, timeout=0.2)
    assert time.monotonic() - started < 0.9
    server.configure(timeout_s=0.1)
    r = call(server.url + API_ENDPOINTS["tickets"][0], SUP, timeout=5)
    assert r.status == 503
    assert server.stats()["faults"]["timeout"] == 2


def test_faults_spare_the_control_api_and_slow_ms_delays_data(server):
    server.configure(fault_rate=1.0, faults=["500"])
    assert call(server.url + "/_demo/config").status == 200
    assert call(server.url + "/_demo/stats").status == 200
    server.configure(fault_rate=0.0, slow_ms=150)
    started = time.monotonic()
    assert get(server, "agents").status == 200
    assert time.monotonic() - started >= 0.15


def test_fail_after_rows_crashes_the_entity_mid_load(server):
    server.configure(fail_after_rows={"ticket_events": 25})
    body = get(server, "ticket_events", page_size=10).json
    body = get(server, "ticket_events", page_size=10, cursor=body["after_cursor"]).json
    third = get(server, "ticket_events", page_size=10, cursor=body["after_cursor"])
    assert third.status == 200 and len(third.json["ticket_events"]) == 5  # cut at the limit
    for _ in range(3):
        r = get(server, "ticket_events", cursor=third.json["after_cursor"])
        assert r.status == 500 and "crash" in r.json["error"]
    assert get(server, "tickets").status == 200  # other entities unaffected
    server.reset()
    assert get(server, "ticket_events").status == 200


# --- schema drift and bad rows ----------------------------------------------------------


def test_schema_add_drop_rename(server):
    server.configure(
        schema={
            "signups": {
                "add": {"referrer": "newsletter", "utm_source": "forced"},
                "drop": ["landing_page"],
                "rename": {"email": "email_address"},
            }
        }
    )
    rows = drain(server, "signups", page_size=6)
    assert len(rows) == 20
    for row in rows:
        assert "email" not in row and "landing_page" not in row
        assert row["email_address"].endswith("@example.com")
        assert row["referrer"] == "newsletter" and row["utm_source"] == "forced"
    assert list(rows[0])[-2:] == ["referrer", "utm_source"]
    assert list(get(server, "campaigns").json["data"][0]) == entity("campaigns").field_names
    server.configure(schema={})
    assert list(get(server, "signups").json["data"][0]) == entity("signups").field_names


BAD = [{"ticket_id": None, "subject": "no id"}, {"ticket_id": "x", "updated_at": "soon"}, 7]


def test_bad_rows_come_once_at_the_end_of_each_stream(server):
    server.configure(bad_rows={"tickets": BAD, "campaigns": BAD[:1], "agents": BAD[:1]})
    pages = []
    params: dict[str, Any] = {"page_size": 4}
    for _ in range(20):
        body = get(server, "tickets", **params).json
        pages.append(body["tickets"])
        if body["end_of_stream"]:
            break
        params["cursor"] = body["after_cursor"]
    else:
        pytest.fail("the stream never ended")
    served = [row for page in pages for row in page]
    assert served[-3:] == BAD and len(served) == 26
    assert [len(p) for p in pages][-2:] == [4, 2]  # 20 real, then 3 real + 1 bad, then 2 bad
    # the final cursor of this run does not serve them again; a fresh stream does
    again = get(server, "tickets", cursor=body["after_cursor"]).json
    assert again["tickets"] == [] and again["end_of_stream"]
    assert drain(server, "tickets", page_size=100)[-3:] == BAD

    campaigns = drain(server, "campaigns", page_size=7)
    assert campaigns[-1] == BAD[0] and len(campaigns) == 8
    assert get(server, "agents").json["agents"][-1] == BAD[0]


def test_bad_rows_are_not_reshaped_by_schema_changes(server):
    server.configure(bad_rows={"signups": [{"email": 1}]}, schema={"signups": {"drop": ["email"]}})
    rows = drain(server, "signups", page_size=1000)
    assert rows[-1] == {"email": 1}
    assert all("email" not in r for r in rows[:-1])


# --- control API -----------------------------------------------------------------------


def test_control_api_configures_validates_counts_and_resets(world):
    start = {"fault_rate": 0.0, "slow_ms": 0, "seed": 3}
    with DemoServer(world, marketing_token=MKT, support_token=SUP, config=start) as srv:
        ok = call(srv.url + "/_demo/config", data={"fault_rate": 1.0, "faults": ["502"]})
        assert ok.status == 200 and ok.json["fault_rate"] == 1.0 and ok.json["seed"] == 3
        assert call(srv.url + "/_demo/config").json["faults"] == ["502"]
        assert get(srv, "agents").status == 502
        for bad in (
            {"fault_rate": 2},
            {"faults": ["418"]},
            {"nope": 1},
            {"schema": {"orders": {}}},
            {"retry_after_s": 0.5},
        ):
            r = call(srv.url + "/_demo/config", data=bad)
            assert r.status == 400 and r.json["error"], bad
        with pytest.raises(ValueError, match="fault_rate"):
            srv.configure(fault_rate=-1)
        stats = call(srv.url + "/_demo/stats").json
        assert stats["requests"]["agents"] == 1
        assert stats["faults"] == {"502": 1} and stats["responses"]["502"] == 1
        reset = call(srv.url + "/_demo/reset", data={})
        assert reset.status == 200 and reset.json["fault_rate"] == 0.0
        assert srv.stats()["faults"] == {}
        assert get(srv, "agents").status == 200


def test_control_api_is_for_loopback_clients_only():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("::ffff:127.0.0.1")
    assert not _is_loopback("10.1.2.3") and not _is_loopback("192.168.0.4")


def test_stop_hangs_up_on_keep_alive_connections(world):
    srv = DemoServer(world, marketing_token=MKT, support_token=SUP).start()
    conn = http.client.HTTPConnection(*srv.url.removeprefix("http://").split(":"), timeout=5)
    path, headers = API_ENDPOINTS["agents"][0], {"Authorization": f"Bearer {SUP}"}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    assert response.status == 200 and not response.will_close
    response.read()
    srv.stop()
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", path, headers=headers)
        conn.getresponse()
    conn.close()


def test_constructor_config_is_validated(world):
    with pytest.raises(Exception, match="unknown fault"):
        DemoServer(world, marketing_token=MKT, support_token=SUP, config={"faults": ["404"]})


# --- command line ----------------------------------------------------------------------


def test_cli_prints_the_url_serves_and_stops_on_sigterm(world):
    env = {**os.environ, "OPS_MARKETING_API_TOKEN": MKT, "OPS_SUPPORT_API_TOKEN": SUP}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ops_demo.server",
            "--dir",
            str(world),
            "--port",
            "0",
            "--fault-rate",
            "1",
            "--faults",
            "429",
            "--retry-after-s",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://\S+", line).group(0)
        r = call(url + API_ENDPOINTS["agents"][0], SUP)
        assert r.status == 429 and r.headers["Retry-After"] == "2"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
