"""The demo server's Zendesk dialect (ops_demo.vendors.zendesk), and the Zendesk adapter
loading the demo world through it: the same raw rows as the generic dialect."""

from __future__ import annotations

import base64
import dataclasses
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import requests
import yaml

from ops_demo.vendors import zendesk as emulator
from ops_warehouse.errors import SourceConfigError
from ops_warehouse.pipeline.contracts import entity
from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.settings import PROJECT_ROOT, Settings
from tests.conftest import UNTIL, make_settings
from tests.helpers import day_window, raw_snapshot

BEARER = {"Authorization": "Bearer s-token"}
CLOCK = datetime(UNTIL.year, UNTIL.month, UNTIL.day, tzinfo=UTC) + timedelta(days=1)
SUPPORT = ("tickets", "ticket_events", "time_entries", "agents")


def get(server, path: str, params=None, headers=BEARER) -> requests.Response:
    return requests.get(f"{server.url}/api/v2/{path}", params=params, headers=headers, timeout=10)


def world_table(world_dir: Path, name: str) -> pa.Table:
    return pq.read_table(world_dir / "api" / f"{name}.parquet")


def seconds(value: datetime) -> int:
    return int(value.timestamp())


# --- Zendesk's paging ---------------------------------------------------------------------------


def test_ticket_export_pages_to_the_end_with_cursors(server, world_dir):
    tickets = world_table(world_dir, "tickets").to_pylist()
    visible = sorted(
        (seconds(t["updated_at"]), t["ticket_id"])
        for t in tickets
        if seconds(t["updated_at"]) < seconds(CLOCK) - 60
    )
    params = {"start_time": 0, "per_page": 7, "include": "users"}
    served, pages = [], 0
    while True:
        body = get(server, "incremental/tickets/cursor.json", params).json()
        pages += 1
        served += [(t["generated_timestamp"], t["id"]) for t in body["tickets"]]
        assert len(body["tickets"]) <= 7
        requesters = {u["id"] for u in body["users"]}
        assert {t["requester_id"] for t in body["tickets"]} <= requesters
        if body["tickets"]:
            last = body["tickets"][-1]
            position = base64.b64decode(body["after_cursor"]).decode()
            assert position == f"{last['generated_timestamp']}.0||{last['id']}|"
        assert body["after_url"].startswith(emulator.CANONICAL)  # not the host called
        if body["end_of_stream"]:
            break
        params = {"cursor": body["after_cursor"], "per_page": 7, "include": "users"}
    assert served == visible and pages == -(-len(visible) // 7)
    # the last cursor is kept for the next run: it answers an empty, final page
    again = get(server, "incremental/tickets/cursor.json", {"cursor": body["after_cursor"]}).json()
    assert again["tickets"] == [] and again["end_of_stream"] is True
    assert again["after_cursor"] == body["after_cursor"]


def test_exports_leave_out_the_last_minute_and_refuse_a_start_inside_it(server, world_dir):
    moments = sorted(
        seconds(t) for t in world_table(world_dir, "tickets")["updated_at"].to_pylist()
    )
    now = moments[len(moments) // 2] + 30
    server.configure(zendesk={"now": now})
    body = get(server, "incremental/tickets/cursor.json", {"start_time": 0}).json()
    changed = [t["generated_timestamp"] for t in body["tickets"]]
    assert changed and max(changed) < now - 60
    assert len(changed) == sum(m < now - 60 for m in moments)
    events = get(server, "incremental/ticket_events.json", {"start_time": 0}).json()
    assert max(a["timestamp"] for a in events["ticket_events"]) < now - 60
    assert events["end_of_stream"] is True
    refused = get(server, "incremental/ticket_events.json", {"start_time": now - 30})
    assert refused.status_code == 422 and refused.json()["error"] == "InvalidValue"


def _plant_one_second(world_dir: Path, count: int) -> int:
    """Moves ``count`` events of different tickets to one second; returns that second."""
    path = world_dir / "api" / "ticket_events.parquet"
    table = pq.read_table(path)
    comments = pc.equal(table["event_type"], "comment").to_pylist()
    tickets, picked = set(), []
    for i, (is_comment, tid) in enumerate(
        zip(comments, table["ticket_id"].to_pylist(), strict=True)
    ):
        if is_comment and tid not in tickets:
            tickets.add(tid)
            picked.append(i)
        if len(picked) == count:
            break
    moment = table["created_at"][picked[0]].as_py()
    created = table["created_at"].to_pylist()
    for i in picked:
        created[i] = moment
    column = table.schema.get_field_index("created_at")
    table = table.set_column(column, "created_at", pa.array(created, table["created_at"].type))
    pq.write_table(table, f"{path}.tmp")
    os.replace(f"{path}.tmp", path)
    return seconds(moment)


def test_event_export_never_splits_a_second_and_repeats_the_last(server, world_dir):
    second = _plant_one_second(world_dir, 3)
    page = get(
        server, "incremental/ticket_events.json", {"start_time": second, "per_page": 1}
    ).json()
    assert [a["timestamp"] for a in page["ticket_events"]] == [second] * 3  # per_page=1 or not
    assert page["end_of_stream"] is False and page["end_time"] == second + 1
    assert page["next_page"].endswith(f"start_time={second + 1}")
    params = {"start_time": 0, "per_page": 50, "include": "comment_events"}
    while True:
        page = get(server, "incremental/ticket_events.json", params).json()
        if page["end_of_stream"]:
            break
        params["start_time"] = page["end_time"]
    last = page["ticket_events"][-1]
    assert page["end_time"] == last["timestamp"]  # the final page repeats its last second
    again = get(
        server, "incremental/ticket_events.json", {**params, "start_time": page["end_time"]}
    )
    assert last["id"] in [a["id"] for a in again.json()["ticket_events"]]


def test_comments_only_with_comment_events(server):
    bare = get(server, "incremental/ticket_events.json", {"start_time": 0}).json()
    full = get(
        server, "incremental/ticket_events.json", {"start_time": 0, "include": "comment_events"}
    ).json()
    kinds = lambda page: {c["event_type"] for a in page["ticket_events"] for c in a["child_events"]}  # noqa: E731
    assert "Comment" in kinds(full) and "Comment" not in kinds(bare)


def test_lists_end_on_has_more_while_still_linking_a_next_page(server):
    params = {"page[size]": 2}
    names = []
    while True:
        body = get(server, "groups.json", params).json()
        names += [g["name"] for g in body["groups"]]
        assert body["links"]["next"] is not None
        if not body["meta"]["has_more"]:
            break
        params = {"page[size]": 2, "page[after]": body["meta"]["after_cursor"]}
    assert names == sorted(names) and len(names) == 4  # ordered by name
    offset = get(server, "users.json", {"per_page": 10}).json()  # no page[size]: offset paging
    assert len(offset["users"]) == 10 and offset["count"] > 10
    assert offset["next_page"].endswith("page=2&per_page=10") and "meta" not in offset
    staff = get(
        server, "users.json", [("role[]", "agent"), ("role[]", "admin"), ("page[size]", 100)]
    )
    roles = {u["role"] for u in staff.json()["users"]}
    assert roles == {"agent", "admin"}


# --- throttling, authentication, error bodies -----------------------------------------------------


def test_the_export_limit_answers_zendesk_429(server):
    server.configure(zendesk={"export_requests_per_minute": 2})
    for _ in range(2):
        assert get(server, "incremental/ticket_events.json", {"start_time": 0}).status_code == 200
    refused = get(server, "incremental/tickets/cursor.json", {"start_time": 0})
    assert refused.status_code == 429
    assert refused.json()["error"] == "APIRateLimitExceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert get(server, "groups.json", {"page[size]": 100}).status_code == 200  # not an export


def _admin_and_agent(server) -> tuple[str, str]:
    users = get(server, "users.json", [("role[]", "agent"), ("role[]", "admin")]).json()["users"]
    admin = next(u["email"] for u in users if u["role"] == "admin")
    agent = next(u["email"] for u in users if u["role"] == "agent" and u["active"])
    return admin, agent


def basic(email: str, token: str = "s-token") -> dict[str, str]:
    return {
        "Authorization": "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()
    }


def test_authentication(server):
    admin, agent = _admin_and_agent(server)
    export = "incremental/tickets/cursor.json"
    assert get(server, export, {"start_time": 0}, basic(admin)).status_code == 200
    forbidden = get(server, export, {"start_time": 0}, basic(agent))
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "Forbidden"
    assert get(server, "users.json", None, basic(agent)).status_code == 200
    for headers in (
        basic(admin, "wrong"),
        basic("nobody@example.com"),
        {"Authorization": "Bearer x"},
        {},
    ):
        refused = get(server, export, {"start_time": 0}, headers)
        assert refused.status_code == 401 and "authenticate" in refused.json()["error"]
    missing = get(server, "ticket_fields.json")
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("kind", ["export", "text", "edge"])
def test_injected_429s_come_in_zendesk_bodies(server, kind):
    server.configure(fault_rate=1.0, faults=["429"], zendesk={"rate_limit_body": kind})
    refused = get(server, "incremental/tickets/cursor.json", {"start_time": 0})
    assert refused.status_code == 429
    if kind == "text":
        assert refused.headers["Content-Type"].startswith("text/plain")
        assert refused.headers["Retry-After"] == "1"
    elif kind == "edge":
        assert refused.json()["status"] == "429"  # a string
        assert "Retry-After" not in refused.headers
    else:
        assert refused.json()["error"] == "APIRateLimitExceeded"


def test_zendesk_config_is_validated(server):
    with pytest.raises(ValueError, match="export_requests_per_minute"):
        server.configure(zendesk={"export_requests_per_minute": 0})
    with pytest.raises(ValueError, match="unknown keys"):
        server.configure(zendesk={"speed": 1})


# --- the adapter over the demo world ------------------------------------------------------------


def zendesk_settings(home: Path, world_dir: Path, url: str, **overrides) -> Settings:
    """The demo's mapping file, with the costs of this world's agents (the demo file lists
    those of the default seed)."""
    content = yaml.safe_load((PROJECT_ROOT / "config" / "mapping.demo.yml").read_text())
    content["zendesk"]["agents"]["cost"]["by_agent"] = {
        a["agent_id"]: {"hourly_cost": f"{a['hourly_cost']:.2f}", "currency": a["currency"]}
        for a in world_table(world_dir, "agents").to_pylist()
    }
    home.mkdir(parents=True, exist_ok=True)
    path = home / "mapping.yml"
    path.write_text(yaml.safe_dump({"zendesk": content["zendesk"]}))
    settings = make_settings(home, world_dir, url, **overrides)
    return dataclasses.replace(settings, support_dialect="zendesk", mapping_file=path)


def held_back(rows: dict[str, list[tuple]], before: datetime) -> dict[str, list[tuple]]:
    """The support rows of a generic load less those changed at or after ``before``: what
    the Zendesk exports held back (satisfaction ratings come from a list, which holds
    nothing back)."""
    out = {}
    for name in SUPPORT:
        fields = entity(name).field_names
        cursor = entity(name).cursor
        if cursor is None:
            out[name] = rows[name]
            continue
        at, kind = (
            fields.index(cursor),
            fields.index("event_type") if "event_type" in fields else None,
        )
        out[name] = [
            r
            for r in rows[name]
            if datetime.fromisoformat(r[at]) < before
            or (kind is not None and r[kind] == "satisfaction_rated")
        ]
    return out


def support(snapshot: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {name: snapshot[name] for name in SUPPORT}


def test_the_zendesk_dialect_loads_what_the_generic_one_does(settings, server, world_dir, tmp_path):
    """Every contract field of every support entity comes out of Zendesk as the generic
    dialect serves it: ids, times, categories, channels, priorities (a missing Zendesk
    priority is "normal"), statuses, requesters, event roles, time in minutes, teams and
    costs (from the mapping file). The one difference by design: what changed in the world's
    last minute, which the Zendesk exports hold back until the clock has moved on; after
    the world advances, both dialects hold the same rows."""
    from ops_demo import world

    zsettings = zendesk_settings(tmp_path / "zendesk", world_dir, server.url)
    load_source("support", day_window(UNTIL), settings=settings)
    summary = load_source("support", day_window(UNTIL), settings=zsettings)
    generic = raw_snapshot(settings)
    assert all(generic[name] for name in SUPPORT)
    assert all(s.rows_quarantined == 0 for s in summary.entities.values())
    assert support(raw_snapshot(zsettings)) == held_back(generic, CLOCK - timedelta(seconds=60))
    world.advance(world_dir, days=2)
    for offset in (1, 2):
        for each in (settings, zsettings):
            load_source("support", day_window(UNTIL + timedelta(days=offset)), settings=each)
    advanced = raw_snapshot(settings)
    assert len(advanced["tickets"]) > len(generic["tickets"])
    assert support(raw_snapshot(zsettings)) == held_back(
        advanced, CLOCK + timedelta(days=2, seconds=-60)
    )
    requests_made = server.stats()["requests"]
    # both entities of the ticket-event export share one read per run
    assert requests_made["zendesk /api/v2/incremental/ticket_events"] <= 3 * 2


def test_rows_held_back_in_the_last_minute_come_with_the_next_run(
    settings, server, world_dir, tmp_path
):
    tickets = world_table(world_dir, "tickets")
    moments = sorted(seconds(t) for t in tickets["updated_at"].to_pylist())
    now = moments[len(moments) // 2] + 30
    server.configure(zendesk={"now": now})
    zsettings = zendesk_settings(tmp_path / "zendesk", world_dir, server.url)
    load_source("support", day_window(UNTIL), settings=zsettings)
    first = raw_snapshot(zsettings)
    cut = datetime.fromtimestamp(now - 60, UTC)
    assert 0 < len(first["tickets"]) < len(moments)
    assert all(datetime.fromisoformat(t[-1]) < cut for t in first["tickets"])
    server.configure(zendesk={"now": None})  # the world's clock: a day later for the loader
    load_source("support", day_window(UNTIL + timedelta(days=1)), settings=zsettings)
    load_source("support", day_window(UNTIL), settings=settings)
    expected = held_back(raw_snapshot(settings), CLOCK - timedelta(seconds=60))
    assert support(raw_snapshot(zsettings)) == expected


def test_the_adapter_waits_out_the_export_limit(settings, server, world_dir, tmp_path):
    server.configure(zendesk={"export_requests_per_minute": 1, "rate_window_s": 0.5})
    zsettings = zendesk_settings(
        tmp_path / "zendesk", world_dir, server.url, page_size=200, http_backoff_max_s=0.2
    )
    load_source("support", day_window(UNTIL), settings=zsettings)
    assert server.stats()["responses"].get("429", 0) > 0
    load_source("support", day_window(UNTIL), settings=settings)
    expected = held_back(raw_snapshot(settings), CLOCK - timedelta(seconds=60))
    assert support(raw_snapshot(zsettings)) == expected


def test_api_token_sign_in_needs_an_admin(server, world_dir, tmp_path):
    admin, agent = _admin_and_agent(server)
    signed_in = zendesk_settings(tmp_path / "admin", world_dir, server.url, zendesk_email=admin)
    summary = load_source("support", day_window(UNTIL), settings=signed_in)
    assert summary.entities["tickets"].rows_loaded > 0
    as_agent = zendesk_settings(tmp_path / "agent", world_dir, server.url, zendesk_email=agent)
    with pytest.raises(SourceConfigError) as caught:
        load_source("support", day_window(UNTIL), settings=as_agent)
    assert "403" in str(caught.value) and "OPS_ZENDESK_EMAIL" in str(caught.value)
    assert "s-token" not in str(caught.value)
