"""The Zendesk adapter (ops_warehouse.pipeline.sources.zendesk) against a scripted Zendesk.

Payloads here are written for these tests in Zendesk's shapes (ids, names and times of our
own). A small HTTP server answers each path from a script and records every request, so the
tests see what the adapter asked, in which order, how often, and how long it waited.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
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
from ops_warehouse.pipeline.contracts import entities_of, entity
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.rebuild import rebuild
from ops_warehouse.pipeline.sources import mapping, zendesk
from ops_warehouse.pipeline.sources.arrow_rows import Origin, rows_to_batch
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.queries import query
from tests.helpers import raw_snapshot

TOKEN = "zd-secret-token-123"
DAY = datetime(2026, 3, 10, tzinfo=UTC)
WINDOW = Window(DAY, DAY + timedelta(days=1))
T0 = int(DAY.timestamp())  # 2026-03-10 00:00:00 UTC
END = int(WINDOW.end.timestamp())
EXPORT = zendesk.TICKET_EXPORT
EVENTS = zendesk.EVENT_EXPORT

# --- a scripted Zendesk ----------------------------------------------------------------------

Reply = tuple[int, Any, dict[str, str]]


class FakeZendesk:
    """Each path answers from its script: a list of replies taken in turn (the last one
    repeats), or a function of the query. Unknown paths get Zendesk's HTML 404."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Callable[[list[tuple[str, str]]], Reply]] = {}
        self.requests: list[tuple[str, list[tuple[str, str]], dict[str, str]]] = []
        self.delay: dict[str, float] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qsl(parts.query, keep_blank_values=True)
                fake.requests.append((parts.path, query, dict(self.headers)))
                if fake.delay.get(parts.path):
                    time.sleep(fake.delay.pop(parts.path))
                script = fake.routes.get(parts.path)
                if script is None:
                    status, body, headers = 404, "<html>no such page</html>", {}
                    headers = {"Content-Type": "text/html"}
                elif callable(script):
                    status, body, headers = script(query)
                else:
                    status, body, headers = script.pop(0) if len(script) > 1 else script[0]
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                kind = "text/plain" if isinstance(body, str) else "application/json; charset=utf-8"
                headers = {"Content-Type": kind, **headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def on(self, path: str, *replies: Reply | dict) -> None:
        self.routes[path] = [r if isinstance(r, tuple) else (200, r, {}) for r in replies]

    def asked(self, path: str) -> list[dict[str, str]]:
        return [dict(q) for p, q, _ in self.requests if p == path]


@pytest.fixture
def fake():
    server = FakeZendesk()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


MAPPING = {
    "zendesk": {
        "tickets": {
            "category_field_id": 7001,
            "category_values": {"reason_money": "billing", "reason_parcel": "delivery"},
            "category_tags": {"vip_account": "account"},
            "channels": {"sample_ticket": "email"},
        },
        "time_tracking": {"time_spent_field_id": 7002},
        "satisfaction": {"lookback_days": 10},
        "agents": {
            "team_names": {"Tier 1": "general"},
            "cost": {
                "default": {"hourly_cost": 30, "currency": "USD"},
                "by_team": {"billing": {"hourly_cost": "41.5", "currency": "EUR"}},
                "by_agent": {
                    "501": {"hourly_cost": 55, "currency": "USD"},
                    "Kim@Example.org": {"hourly_cost": 160, "currency": "CNY"},
                },
            },
        },
    }
}
CONFIG = mapping.SECTIONS["zendesk"].parse(MAPPING["zendesk"], "zendesk")


def write_mapping(tmp_path: Path, content: dict = MAPPING) -> Path:
    import yaml

    path = tmp_path / "mapping.yml"
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture
def zsettings(fake, tmp_path) -> Settings:
    return dataclasses.replace(
        Settings.from_env(),
        home=tmp_path / "home",
        warehouse_path=tmp_path / "home" / "working.duckdb",
        published_path=tmp_path / "home" / "published.duckdb",
        dlt_dir=tmp_path / "home" / "dlt",
        support_dialect="zendesk",
        support_api_url=fake.url,
        support_api_token=TOKEN,
        zendesk_email="",
        mapping_file=write_mapping(tmp_path),
        http_timeout_s=1.0,
        http_max_attempts=4,
        http_backoff_max_s=5.0,
        page_size=1000,
    )


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The adapter's waits between attempts, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(zendesk.ZendeskClient, "sleep", staticmethod(recorded.append))
    return recorded


# --- payloads ------------------------------------------------------------------------------


def ticket(tid: int, changed: int, **fields: Any) -> dict[str, Any]:
    body = {
        "url": f"https://acme.zendesk.com/api/v2/tickets/{tid}.json",
        "id": tid,
        "via": {"channel": "email", "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": "2026-03-01T08:00:00Z",
        "updated_at": zendesk._iso(changed - 1),
        "subject": f"Question {tid}",
        "raw_subject": f"Question {tid}",
        "priority": "high",
        "status": "open",
        "requester_id": 900 + tid,
        "submitter_id": 900 + tid,
        "assignee_id": 501,
        "tags": [],
        "custom_fields": [{"id": 7001, "value": "reason_money"}, {"id": 7002, "value": None}],
        "generated_timestamp": changed,
    }
    body.update(fields)
    return body


def user(uid: int, email: str | None, role: str = "end-user", **fields: Any) -> dict[str, Any]:
    return {
        "id": uid,
        "name": f"Person {uid}",
        "email": email,
        "role": role,
        "active": True,
        "suspended": False,
        "default_group_id": None,
        **fields,
    }


def export_page(
    tickets: list[dict], cursor: str | None, end: bool | None, users: list[dict] | None = None
) -> dict[str, Any]:
    page: dict[str, Any] = {
        "tickets": tickets,
        "after_url": None
        if cursor is None
        else f"https://acme.zendesk.com{EXPORT}?cursor={cursor}",
        "after_cursor": cursor,
        "before_url": None,
        "before_cursor": None,
    }
    if users is not None:
        page["users"] = users
    if end is not None:
        page["end_of_stream"] = end
    return page


def audit(aid: int, tid: int, at: int, updater: Any, *children: dict) -> dict[str, Any]:
    return {
        "id": aid,
        "ticket_id": tid,
        "timestamp": at,
        "created_at": zendesk._iso(at),
        "updater_id": updater,
        "via": "Web form",
        "event_type": "Audit",
        "child_events": list(children),
    }


def comment(cid: int, author: int, public: bool) -> dict[str, Any]:
    return {
        "id": cid,
        "type": "Comment",
        "author_id": author,
        "body": "Thanks, looking into it",
        "public": public,
        "via": {"channel": "web", "source": {}},
        "event_type": "Comment",
    }


def change(cid: int, **field: Any) -> dict[str, Any]:
    return {"id": cid, "via": "Web form", "previous_value": None, "event_type": "Change", **field}


def events_page(audits: list[dict], end_time: int | None, end: bool | None) -> dict[str, Any]:
    page: dict[str, Any] = {"ticket_events": audits, "count": len(audits)}
    if end_time is not None:
        page["end_time"] = end_time
        page["next_page"] = f"https://acme.zendesk.com{EVENTS}?start_time={end_time}"
    if end is not None:
        page["end_of_stream"] = end
    return page


def listing(key: str, rows: list[dict], after: str | None = None) -> dict[str, Any]:
    """A cursor-paged list page: the last one still links a next page."""
    last = after or "bGFzdA=="
    return {
        key: rows,
        "meta": {"has_more": after is not None, "after_cursor": last, "before_cursor": "Zmlyc3Q="},
        "links": {"prev": None, "next": f"https://acme.zendesk.com/api/v2/x?page[after]={last}"},
    }


def serve_account(
    fake: FakeZendesk,
    *,
    tickets: list[dict] | None = None,
    audits: list[dict] | None = None,
    ratings: list[dict] | None = None,
    agents: list[dict] | None = None,
) -> None:
    """A small account answering every path a support load asks."""
    agents = agents if agents is not None else [user(501, "ana@example.org", "admin")]
    fake.on(EXPORT, export_page(tickets or [], "Y3Vyc29yLWVuZA==", True, users=[]))
    fake.on(EVENTS, events_page(audits or [], T0, True))
    fake.on(zendesk.RATINGS, listing("satisfaction_ratings", ratings or []))
    fake.on(zendesk.USERS, listing("users", agents))
    fake.on(zendesk.GROUPS, listing("groups", [{"id": 61, "name": "billing"}]))
    fake.on(
        zendesk.MEMBERSHIPS,
        listing(
            "group_memberships",
            [{"id": 1, "user_id": a["id"], "group_id": 61, "default": True} for a in agents],
        ),
    )


def run(reader, name: str, state: dict, window: Window = WINDOW):
    """Every batch a reader yields, as (contract rows, quarantine reasons)."""
    rows, reasons = [], []
    for batch in reader(entity(name), state, window):
        rows += batch.table.to_pylist()
        reasons += batch.quarantined["reason"].to_pylist()
    return rows, reasons


def readers_for(settings: Settings) -> dict:
    return zendesk.readers(settings, ExitStack())


# --- Zendesk rows -> contract rows ---------------------------------------------------------------


def test_ticket_fields_are_translated():
    tickets = [
        ticket(1, T0 + 10, status="hold", priority=None),
        ticket(2, T0 + 20, via={"channel": "voice"}, custom_fields=[], tags=["vip_account"]),
        ticket(
            3,
            T0 + 30,
            via={"channel": "api"},
            status="solved",
            tags=["nothing"],
            custom_fields=[{"id": 7001, "value": None}],
        ),
        ticket(
            4,
            T0 + 40,
            via={"channel": "sample_ticket"},
            fields=[{"id": 7001, "value": "reason_parcel"}],
            custom_fields=[],
        ),
        ticket(
            5,
            T0 + 50,
            custom_fields=[{"id": 7001, "value": "product"}],
            subject=None,
            raw_subject=None,
        ),
    ]
    users = [user(901, "Jo@Example.net"), user(902, "kai@example.net")]
    out = zendesk.ticket_rows(tickets, users, CONFIG["tickets"], END)
    by_id = {r["ticket_id"]: r for r in out.rows}
    assert by_id[1]["status"] == "pending"  # on hold: open work, not the agent's move
    assert by_id[1]["priority"] == "normal"  # no priority in Zendesk
    assert by_id[1]["category"] == "billing"  # the drop-down's value, mapped
    assert by_id[1]["requester_email"] == "Jo@Example.net"
    assert by_id[1]["updated_at"] == zendesk._iso(T0 + 10)  # generated_timestamp, not updated_at
    assert by_id[2]["channel"] == "phone" and by_id[2]["category"] == "account"  # by tag
    assert by_id[3]["channel"] == "web" and by_id[3]["category"] == "other"  # the defaults
    assert by_id[3]["status"] == "solved"
    assert by_id[4]["channel"] == "email" and by_id[4]["category"] == "delivery"
    assert by_id[5]["category"] == "product" and by_id[5]["subject"] == zendesk.NO_SUBJECT
    batch = rows_to_batch(entity("tickets"), out.rows, WINDOW.end, Origin("page"))
    assert batch.quarantined.num_rows == 0 and batch.table.num_rows == 5


def test_tickets_without_a_requester_address_keep_their_place():
    tickets = [ticket(1, T0), ticket(2, T0, requester_id=None), ticket(3, T0, requester_id=77)]
    out = zendesk.ticket_rows(tickets, [user(901, None)], CONFIG["tickets"], END)
    emails = [r["requester_email"] for r in out.rows]
    assert emails == [
        "zendesk-user-901@zendesk.invalid",
        "no-requester@zendesk.invalid",
        "zendesk-user-77@zendesk.invalid",  # not side-loaded
    ]
    batch = rows_to_batch(entity("tickets"), out.rows, WINDOW.end, Origin("page"))
    assert batch.quarantined.num_rows == 0


def test_deleted_tickets_and_tickets_after_the_window_end_are_set_apart():
    tickets = [ticket(1, T0), ticket(2, END - 1, status="deleted"), ticket(3, END)]
    out = zendesk.ticket_rows(tickets, [], CONFIG["tickets"], END)
    assert [r["ticket_id"] for r in out.rows] == [1]
    assert out.deleted == [{"ticket_id": 2, "updated_at": zendesk._iso(END - 1)}]
    assert out.later


def test_audits_become_events_and_time_entries():
    role = {501: "agent", 901: "end_user"}.get
    audits = [
        # a new ticket: Create children and its description: one "created" event
        audit(
            1000,
            1,
            T0,
            901,
            {"id": 1001, "status": "new", "event_type": "Create"},
            {"id": 1002, "custom_ticket_fields": {"7001": "reason_money"}, "event_type": "Create"},
            comment(1003, 901, True),
        ),
        audit(1010, 1, T0 + 60, 501, comment(1011, 501, True), change(1012, status="open")),
        audit(1020, 1, T0 + 120, 501, comment(1021, 501, False), change(1022, status="hold")),
        audit(1030, 1, T0 + 180, -1, change(1031, status="solved"), change(1032, priority="low")),
        audit(1040, 1, T0 + 240, 501, change(1041, custom_ticket_fields={"7002": "90"})),
        audit(1050, 1, T0 + 300, 501, change(1051, custom_ticket_fields={"7002": 1739})),
        audit(1060, 1, T0 + 360, 501, change(1061, custom_ticket_fields={"7002": "20"})),
        audit(
            1070,
            1,
            T0 + 420,
            901,
            {
                "id": 1071,
                "type": "SatisfactionRating",
                "score": "good",
                "event_type": "SatisfactionRating",
            },
        ),
        audit(1080, 1, T0 + 480, 501, change(1081, status="deleted")),
        audit(1090, 1, END, 501, comment(1091, 501, True)),
    ]
    out = zendesk.audit_rows(
        audits, lambda uid: "system" if uid in (None, -1) else role(uid, "end_user"), 7002, END
    )
    events = {e["event_id"]: e for e in out.events}
    assert sorted(events) == [1000, 1011, 1012, 1021, 1022, 1031]
    assert events[1000]["event_type"] == "created" and events[1000]["author_role"] == "end_user"
    assert events[1011] | {} == zendesk._event(
        1011, 1, zendesk._iso(T0 + 60), "comment", "agent", is_public=True
    )
    assert events[1021]["is_public"] is False
    assert events[1012]["new_status"] == "open" and events[1022]["new_status"] == "pending"
    assert events[1031]["author_role"] == "system"
    # 90 s -> 2 minutes, 1739 s -> 29 minutes, 20 s rounds to no time at all
    assert [(t["time_entry_id"], t["minutes"], t["agent_id"]) for t in out.time_entries] == [
        (1041, 2, 501),
        (1051, 29, 501),
    ]
    assert out.time_entries[0]["logged_at"] == zendesk._iso(T0 + 240)
    assert out.later  # the audit at the window end waits for the next run


def test_field_name_spelling_and_created_time_entries_are_read():
    audits = [
        audit(
            5, 2, T0, 501, {"id": 6, "field_name": "7002", "value": "600", "event_type": "Create"}
        ),
        audit(
            7,
            2,
            T0 + 5,
            501,
            {"id": 8, "field_name": "status", "value": "pending", "event_type": "Change"},
        ),
    ]
    out = zendesk.audit_rows(audits, lambda uid: "agent", 7002, END)
    assert [(e["event_id"], e["event_type"]) for e in out.events] == [
        (5, "created"),
        (8, "status_change"),
    ]
    assert [(t["time_entry_id"], t["minutes"]) for t in out.time_entries] == [(6, 10)]
    assert zendesk.audit_rows(audits, lambda uid: "agent", None, END).time_entries == []


def test_only_answered_ratings_are_events():
    ratings = [
        {"id": 1, "ticket_id": 5, "score": "offered", "created_at": "2026-03-10T01:00:00Z"},
        {"id": 2, "ticket_id": 6, "score": "unoffered", "created_at": "2026-03-10T01:00:00Z"},
        {
            "id": 3,
            "ticket_id": 7,
            "score": "good",
            "created_at": "2026-03-08T01:00:00Z",
            "updated_at": "2026-03-10T02:00:00Z",
        },
        {"id": 4, "ticket_id": 8, "score": "bad", "created_at": "2026-03-10T03:00:00Z"},
    ]
    rows = zendesk.rating_rows(ratings)
    assert [(r["event_id"], r["score"], r["created_at"]) for r in rows] == [
        (3, "good", "2026-03-10T02:00:00Z"),  # when it was answered
        (4, "bad", "2026-03-10T03:00:00Z"),
    ]
    assert {r["event_type"] for r in rows} == {"satisfaction_rated"}
    assert {r["author_role"] for r in rows} == {"end_user"}


def test_agents_take_team_state_and_cost():
    users = [
        user(501, "ana@example.org", "admin"),
        user(502, "kim@example.org", "agent", suspended=True),
        user(503, "lee@example.org", "agent", active=False, default_group_id=62),
        user(504, "max@example.org", "agent"),
        user(505, "end@example.org", "end-user"),
    ]
    groups = [{"id": 61, "name": "billing"}, {"id": 62, "name": "Tier 1"}]
    memberships = [
        {"id": 1, "user_id": 501, "group_id": 62, "default": False},
        {"id": 2, "user_id": 501, "group_id": 61, "default": True},
        {"id": 3, "user_id": 502, "group_id": 61, "default": True},
        {"id": 4, "user_id": 504, "group_id": 62, "default": False},
    ]
    rows, reasons = zendesk.agent_rows(users, groups, memberships, CONFIG["agents"])
    got = {r["agent_id"]: (r["team"], r["active"], r["hourly_cost"], r["currency"]) for r in rows}
    assert got == {
        501: ("billing", True, "55.00", "USD"),  # by agent id, over by_team
        502: ("billing", False, "160.00", "CNY"),  # by e-mail, any case; suspended
        503: ("general", False, "30.00", "USD"),  # default_group_id, renamed; deactivated
        504: ("general", True, "30.00", "USD"),  # its only membership
    }
    assert reasons == [None] * 4


def test_an_agent_without_a_cost_goes_to_quarantine_naming_the_key():
    bare = mapping.SECTIONS["zendesk"].parse({}, "zendesk")["agents"]
    rows, reasons = zendesk.agent_rows([user(777, "x@example.org", "agent")], [], [], bare)
    batch = rows_to_batch(entity("agents"), rows, WINDOW.end, Origin("users"), reasons)
    assert batch.table.num_rows == 0
    [reason] = batch.quarantined["reason"].to_pylist()
    assert "zendesk.agents.cost.by_agent.777" in reason and "unassigned" in reason


# --- the mapping file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key_path"),
    [
        (
            {"tickets": {"category_values": {"reason_x": "refunds"}}},
            "zendesk.tickets.category_values.reason_x",
        ),
        ({"tickets": {"category_field_id": "abc"}}, "zendesk.tickets.category_field_id"),
        ({"tickets": {"channels": {"voice": "fax"}}}, "zendesk.tickets.channels.voice"),
        ({"tickets": {"priority_default": "meh"}}, "zendesk.tickets.priority_default"),
        ({"tickets": {"colour": "red"}}, "zendesk.tickets.colour"),
        ({"satisfaction": {"lookback_days": -1}}, "zendesk.satisfaction.lookback_days"),
        (
            {"agents": {"cost": {"default": {"hourly_cost": 20, "currency": "GBP"}}}},
            "zendesk.agents.cost.default.currency",
        ),
        (
            {"agents": {"cost": {"default": {"currency": "USD"}}}},
            "zendesk.agents.cost.default.hourly_cost",
        ),
        (
            {
                "agents": {
                    "cost": {"by_agent": {"not an id": {"hourly_cost": 1, "currency": "USD"}}}
                }
            },
            "zendesk.agents.cost.by_agent.not an id",
        ),
        (
            {"agents": {"cost": {"by_team": {"billing": {"hourly_cost": -5, "currency": "USD"}}}}},
            "zendesk.agents.cost.by_team.billing.hourly_cost",
        ),
    ],
)
def test_mapping_errors_name_the_key_and_stop_before_any_request(
    fake, zsettings, tmp_path, section, key_path
):
    settings = dataclasses.replace(
        zsettings, mapping_file=write_mapping(tmp_path, {"zendesk": section})
    )
    with pytest.raises(mapping.MappingError) as caught:
        readers_for(settings)
    assert key_path in str(caught.value)
    assert str(settings.mapping_file) in str(caught.value)
    assert is_permanent(caught.value)
    assert fake.requests == []


def test_a_missing_token_stops_before_any_request(fake, zsettings):
    with pytest.raises(SourceConfigError, match="OPS_SUPPORT_API_TOKEN"):
        readers_for(dataclasses.replace(zsettings, support_api_token=""))
    assert fake.requests == []


# --- the cursor-based ticket export ------------------------------------------------------------


def test_ticket_export_reads_to_the_end_of_the_stream(fake, zsettings):
    """A short page, then an empty one, are not the end: only end_of_stream is. The last
    page's after_cursor is where the next run starts."""
    fake.on(
        EXPORT,
        export_page(
            [ticket(1, T0 + 1), ticket(2, T0 + 2)], "c1", False, [user(901, "a@example.net")]
        ),
        export_page([], "c2", False, []),
        export_page([ticket(3, T0 + 3)], "c3", True, [user(903, "c@example.net")]),
    )
    state: dict = {}
    rows, reasons = run(readers_for(zsettings)["tickets"], "tickets", state)
    assert [r["ticket_id"] for r in rows] == [1, 2, 3] and reasons == []
    assert [q.get("cursor") for q in fake.asked(EXPORT)] == [None, "c1", "c2"]
    first = fake.asked(EXPORT)[0]
    assert (
        first["start_time"] == "0" and first["include"] == "users" and first["per_page"] == "1000"
    )
    assert state["after_cursor"] == "c3" and "start_time" not in state
    # the next run resumes from the stored cursor, with no start_time
    fake.on(EXPORT, export_page([], "c4", True, []))
    run(
        readers_for(zsettings)["tickets"],
        "tickets",
        state,
        Window(WINDOW.end, WINDOW.end + timedelta(days=1)),
    )
    assert fake.asked(EXPORT)[-1] == {"cursor": "c3", "per_page": "1000", "include": "users"}
    assert state["after_cursor"] == "c4"


def test_a_page_without_end_of_stream_is_malformed(fake, zsettings):
    fake.on(EXPORT, export_page([ticket(1, T0)], "c1", None, []))
    with pytest.raises(SourceDataError) as caught:
        run(readers_for(zsettings)["tickets"], "tickets", {})
    assert f"{fake.url}{EXPORT}?start_time=0" in str(caught.value)
    assert "end_of_stream" in str(caught.value)
    assert len(fake.asked(EXPORT)) == 1  # permanent: never retried


def test_a_page_that_goes_nowhere_is_malformed(fake, zsettings):
    fake.on(EXPORT, export_page([], None, False, []))
    with pytest.raises(SourceDataError, match="after_cursor"):
        run(readers_for(zsettings)["tickets"], "tickets", {})
    fake.on(EXPORT, export_page([], "same", False, []))
    with pytest.raises(SourceDataError, match="after_cursor"):
        run(readers_for(zsettings)["tickets"], "tickets", {"after_cursor": "same"})


def test_tickets_changed_after_the_window_end_are_read_again_next_run(fake, zsettings):
    """The run stops at the first page reaching the window end; the tickets at or after it
    are not loaded, and the next run starts at the window end instead of the cursor."""
    fake.on(
        EXPORT,
        export_page(
            [ticket(1, END - 5), ticket(2, END), ticket(3, END + 7)], "past-the-end", False, []
        ),
        export_page([ticket(4, END + 8)], "never-asked", True, []),
    )
    state = {"after_cursor": "c0"}
    rows, _ = run(readers_for(zsettings)["tickets"], "tickets", state)
    assert [r["ticket_id"] for r in rows] == [1]
    assert len(fake.asked(EXPORT)) == 1  # the page reaching the end is the last one read
    assert state["start_time"] == END and "after_cursor" not in state
    fake.requests.clear()
    fake.on(EXPORT, export_page([ticket(2, END), ticket(3, END + 7)], "c9", True, []))
    rows, _ = run(
        readers_for(zsettings)["tickets"],
        "tickets",
        state,
        Window(WINDOW.end, WINDOW.end + timedelta(days=1)),
    )
    assert fake.asked(EXPORT)[0]["start_time"] == str(END)
    assert [r["ticket_id"] for r in rows] == [2, 3]


def test_start_time_is_never_inside_the_last_minute(fake, zsettings):
    serve_account(fake)
    now = int(time.time())
    window = Window(
        datetime.fromtimestamp(now - 3600, UTC), datetime.fromtimestamp(now + 3600, UTC)
    )
    account = readers_for(zsettings)
    run(account["tickets"], "tickets", {"start_time": now + 100}, window)
    run(account["ticket_events"], "ticket_events", {"start_time": now}, window)
    for path in (EXPORT, EVENTS):
        asked = int(fake.asked(path)[0]["start_time"])
        assert asked <= time.time() - 60


def test_a_backfill_rereads_its_interval_and_keeps_the_positions(fake, zsettings):
    fake.on(EXPORT, export_page([ticket(1, T0 + 5), ticket(2, END + 1)], "c-new", False, []))
    state = {"after_cursor": "c-latest", "cursor": (WINDOW.end + timedelta(days=5)).isoformat()}
    rows, _ = run(readers_for(zsettings)["tickets"], "tickets", state)
    assert fake.asked(EXPORT)[0]["start_time"] == str(T0)
    assert [r["ticket_id"] for r in rows] == [1]
    assert state["after_cursor"] == "c-latest" and "start_time" not in state


# --- the ticket-event export, ratings, lists ------------------------------------------------------


def test_event_export_is_read_once_for_both_entities_and_dedupes_its_boundary(fake, zsettings):
    serve_account(fake)
    repeated = audit(
        20,
        1,
        T0 + 50,
        501,
        comment(21, 501, True),
        change(22, custom_ticket_fields={"7002": "300"}),
    )
    fake.on(
        EVENTS,
        events_page([audit(10, 1, T0 + 10, 501, comment(11, 501, True)), repeated], T0 + 51, False),
        events_page(
            [repeated, audit(30, 1, T0 + 80, 501, change(31, custom_ticket_fields={"7002": "60"}))],
            T0 + 80,
            True,
        ),
    )
    account = readers_for(zsettings)
    events_state: dict = {"start_time": T0, "ratings_until": T0}
    times_state: dict = {"start_time": T0}
    events = account["ticket_events"](entity("ticket_events"), events_state, WINDOW)
    times = account["time_entries"](entity("time_entries"), times_state, WINDOW)
    got: dict[str, list] = {"ticket_events": [], "time_entries": []}
    pending = {"ticket_events": events, "time_entries": times}
    while pending:  # in turns, as dlt reads resources
        for name, gen in list(pending.items()):
            batch = next(gen, None)
            if batch is None:
                del pending[name]
                continue
            got[name] += batch.table.to_pylist()
            assert batch.quarantined.num_rows == 0
    assert [e["event_id"] for e in got["ticket_events"]] == [11, 21]
    assert [(t["time_entry_id"], t["minutes"]) for t in got["time_entries"]] == [(22, 5), (31, 1)]
    assert [q["start_time"] for q in fake.asked(EVENTS)] == [str(T0), str(T0 + 51)]
    assert all(q["include"] == "comment_events" for q in fake.asked(EVENTS))
    assert events_state["start_time"] == times_state["start_time"] == T0 + 80


def test_event_export_stops_at_the_window_end_and_checks_its_pages(fake, zsettings):
    serve_account(fake)
    fake.on(
        EVENTS,
        events_page(
            [
                audit(1, 1, END - 1, 501, comment(2, 501, True)),
                audit(3, 1, END, 501, comment(4, 501, True)),
            ],
            END + 1,
            False,
        ),
    )
    state: dict = {"start_time": T0}
    rows, _ = run(readers_for(zsettings)["ticket_events"], "ticket_events", state)
    assert [r["event_id"] for r in rows] == [2]
    assert state["start_time"] == END and len(fake.asked(EVENTS)) == 1
    fake.on(EVENTS, events_page([], T0, False))  # not the end, and no way forward
    with pytest.raises(SourceDataError, match="end_time"):
        run(readers_for(zsettings)["ticket_events"], "ticket_events", {"start_time": T0})
    fake.on(EVENTS, events_page([], T0 + 9, None))
    with pytest.raises(SourceDataError, match="end_of_stream"):
        run(readers_for(zsettings)["ticket_events"], "ticket_events", {"start_time": T0})


def test_ratings_stop_on_has_more_and_reread_the_lookback(fake, zsettings):
    serve_account(fake)
    fake.on(
        zendesk.RATINGS,
        listing(
            "satisfaction_ratings",
            [{"id": 1, "ticket_id": 1, "score": "good", "created_at": "2026-03-10T01:00:00Z"}],
            after="r1",
        ),
        listing(
            "satisfaction_ratings",
            [{"id": 2, "ticket_id": 2, "score": "offered", "created_at": "2026-03-10T02:00:00Z"}],
        ),
    )
    state: dict = {}
    rows, _ = run(readers_for(zsettings)["ticket_events"], "ticket_events", state)
    assert [(r["event_id"], r["score"]) for r in rows] == [(1, "good")]
    asked = fake.asked(zendesk.RATINGS)
    assert len(asked) == 2  # the second page says has_more false though it links a next one
    assert asked[0] == {"page[size]": "100"} and asked[1]["page[after]"] == "r1"
    assert state["ratings_until"] == END
    run(
        readers_for(zsettings)["ticket_events"],
        "ticket_events",
        state,
        Window(WINDOW.end, WINDOW.end + timedelta(days=1)),
    )
    assert fake.asked(zendesk.RATINGS)[-1]["start_time"] == str(END - 10 * 86_400)


def test_agents_are_read_across_list_pages(fake, zsettings):
    serve_account(fake)
    fake.on(
        zendesk.USERS,
        listing("users", [user(501, "ana@example.org", "admin")], after="u1"),
        listing("users", [user(502, "kim@example.org", "agent")]),
    )
    rows, reasons = run(readers_for(zsettings)["agents"], "agents", {})
    assert [r["agent_id"] for r in rows] == [501, 502] and reasons == []
    asked = fake.asked(zendesk.USERS)
    assert [q.get("page[after]") for q in asked] == [None, "u1"]
    query = [q for p, q, _ in fake.requests if p == zendesk.USERS][0]
    assert ("role[]", "agent") in query and ("role[]", "admin") in query


def test_a_list_page_without_has_more_is_malformed(fake, zsettings):
    serve_account(fake)
    fake.on(zendesk.USERS, {"users": [], "meta": {}, "links": {"next": None}})
    with pytest.raises(SourceDataError, match="has_more"):
        run(readers_for(zsettings)["agents"], "agents", {})


# --- HTTP: authentication, throttling, errors --------------------------------------------------------


def client(settings: Settings) -> zendesk.ZendeskClient:
    return zendesk.ZendeskClient(settings)


def test_api_token_or_oauth_sign_in(fake, zsettings):
    fake.on("/api/v2/groups.json", {"groups": []})
    client(zsettings).get("/api/v2/groups.json", [])
    client(dataclasses.replace(zsettings, zendesk_email="admin@acme.test")).get(
        "/api/v2/groups.json", []
    )
    bearer, basic = (headers["Authorization"] for _, _, headers in fake.requests)
    assert bearer == f"Bearer {TOKEN}"
    assert (
        base64.b64decode(basic.removeprefix("Basic ")).decode() == f"admin@acme.test/token:{TOKEN}"
    )


@pytest.mark.parametrize(
    ("reply", "expected_wait"),
    [
        # the incremental exports' own limit: JSON, with Retry-After
        (
            (
                429,
                {"error": "APIRateLimitExceeded", "description": "too many exports"},
                {"Retry-After": "3"},
            ),
            3.0,
        ),
        # the account-wide limit: a text/plain body, which is no JSON
        ((429, "Too many requests this minute", {"Retry-After": "2"}), 2.0),
        # edge protection: "status" is a string and no Retry-After comes: back off
        (
            (429, {"detail": "edge says slow down", "status": "429", "title": "Rate limited"}, {}),
            0.5,
        ),
    ],
)
def test_429_waits_as_told_then_goes_on(fake, zsettings, waits, reply, expected_wait):
    fake.on(EXPORT, reply, export_page([], "c", True, []))
    page, url = client(zsettings).get(EXPORT, [("start_time", 0)])
    assert page["end_of_stream"] is True
    assert waits == [expected_wait] and len(fake.asked(EXPORT)) == 2


def test_retry_after_is_honoured_up_to_the_longest_wait(fake, zsettings, waits):
    fake.on(
        EXPORT,
        (429, {"error": "APIRateLimitExceeded"}, {"Retry-After": "60"}),
        export_page([], "c", True, []),
    )
    client(dataclasses.replace(zsettings, http_backoff_max_s=7.0)).get(EXPORT, [("start_time", 0)])
    assert waits == [7.0]


def test_5xx_and_timeouts_are_retried_with_backoff(fake, zsettings, waits):
    fake.on(
        EXPORT,
        (503, "<html>gateway</html>", {"Content-Type": "text/html"}),
        (500, {"error": "InternalError"}, {}),
        export_page([], "c", True, []),
    )
    client(zsettings).get(EXPORT, [("start_time", 0)])
    assert waits == [0.5, 1.0] and len(fake.asked(EXPORT)) == 3
    fake.requests.clear()
    waits.clear()
    fake.delay[EXPORT] = 1.5  # the first answer comes after the client's timeout
    client(dataclasses.replace(zsettings, http_timeout_s=0.3)).get(EXPORT, [("start_time", 0)])
    assert waits == [0.5] and len(fake.asked(EXPORT)) == 2


@pytest.mark.parametrize(
    ("status", "body", "error", "names"),
    [
        (401, {"error": "Could not authenticate you"}, SourceConfigError, "OPS_SUPPORT_API_TOKEN"),
        (403, {"error": "Forbidden", "description": "admins only"}, SourceConfigError, "admins"),
        (404, "<html>This page does not exist</html>", SourceConfigError, "OPS_SUPPORT_API_URL"),
        (
            422,
            {"error": "InvalidValue", "description": "Too recent start_time"},
            SourceDataError,
            "Too recent start_time",
        ),
        (
            400,
            {"error": "InvalidPaginationParameter"},
            SourceDataError,
            "InvalidPaginationParameter",
        ),
    ],
)
def test_permanent_errors_stop_at_once_naming_url_and_setting(
    fake, zsettings, waits, status, body, error, names
):
    fake.on(EXPORT, (status, body, {}))
    with pytest.raises(error) as caught:
        client(zsettings).get(EXPORT, [("start_time", 0)])
    message = str(caught.value)
    assert f"{fake.url}{EXPORT}?start_time=0" in message and names in message
    assert TOKEN not in message
    assert is_permanent(caught.value)
    assert len(fake.asked(EXPORT)) == 1 and waits == []


def test_retries_end_as_source_unavailable_naming_the_url(fake, zsettings, waits):
    fake.on(EXPORT, (502, "<html>bad gateway</html>", {"Content-Type": "text/html"}))
    with pytest.raises(SourceUnavailableError) as caught:
        client(zsettings).get(EXPORT, [("start_time", 0)])
    assert EXPORT in str(caught.value) and "OPS_SUPPORT_API_URL" in str(caught.value)
    assert not is_permanent(caught.value)
    assert len(fake.asked(EXPORT)) == zsettings.http_max_attempts
    assert len(waits) == zsettings.http_max_attempts - 1


def test_a_200_that_is_not_json_is_malformed(fake, zsettings):
    fake.on(EXPORT, (200, "<html>maintenance</html>", {"Content-Type": "text/html"}))
    with pytest.raises(SourceDataError, match="not JSON"):
        client(zsettings).get(EXPORT, [("start_time", 0)])


# --- through a whole load --------------------------------------------------------------------


def test_a_deleted_ticket_leaves_raw(fake, zsettings):
    serve_account(fake, tickets=[ticket(1, T0 + 10), ticket(2, T0 + 20)])
    load_source("support", WINDOW, settings=zsettings, run_id="one")
    assert [r[0] for r in raw_snapshot(zsettings)["tickets"]] == [1, 2]
    later = Window(WINDOW.end, WINDOW.end + timedelta(days=1))
    # Zendesk keeps updated_at and moves generated_timestamp when it deletes a ticket
    serve_account(
        fake, tickets=[ticket(2, END + 30, status="deleted", updated_at="2026-03-10T00:00:19Z")]
    )
    summary = load_source("support", later, settings=zsettings, run_id="two")
    assert summary.entities["tickets"].rows_quarantined == 0
    assert [r[0] for r in raw_snapshot(zsettings)["tickets"]] == [1]
    # recorded for the next staging build, which drops the ticket (incremental_staging.sql)
    removals = "select raw_table, removed_rows, reason from audit.raw_removals order by removed_at"
    assert query(zsettings, removals) == [("raw_support.tickets", 1, "deleted at the source")]
    # the raw archive keeps the deletion: a rebuild from it leaves the ticket out again
    rebuild(zsettings, sources=("support",), force=True)
    assert [r[0] for r in raw_snapshot(zsettings)["tickets"]] == [1]
    rebuilt = {r[0] for r in query(zsettings, removals) if r[2] == "rebuilt from the archive"}
    assert rebuilt == {f"raw_support.{e.name}" for e in entities_of("support")}


def test_an_entity_behind_the_shared_export_reads_its_own(fake, zsettings):
    """Time entries not loaded with the events last time start earlier: they read from their
    own position rather than miss what lies before the shared read's start."""
    serve_account(fake)
    fake.routes[EVENTS] = lambda query: (
        200,
        events_page(
            [
                a
                for a in (
                    audit(1, 1, T0 + 10, 501, change(2, custom_ticket_fields={"7002": "120"})),
                    audit(3, 1, T0 + 200, 501, change(4, custom_ticket_fields={"7002": "240"})),
                )
                if a["timestamp"] >= int(dict(query)["start_time"])
            ],
            T0 + 200,
            True,
        ),
        {},
    )
    account = readers_for(zsettings)
    events, _ = run(account["ticket_events"], "ticket_events", {"start_time": T0 + 100})
    entries, _ = run(account["time_entries"], "time_entries", {"start_time": T0})
    assert [t["time_entry_id"] for t in entries] == [2, 4]
    assert [q["start_time"] for q in fake.asked(EVENTS)] == [str(T0 + 100), str(T0)]
