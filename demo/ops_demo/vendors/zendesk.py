"""Zendesk Support API v2 over the demo world: the world's helpdesk as a Zendesk account.

Mounted by ``ops_demo.server`` under ``/api/v2/``; built from the same ``api/*.parquet``
files the generic support endpoints serve, so both dialects tell the same story:

- users: every agent (``agent``; the first of each team ``admin``; one who left is
  suspended or deactivated) with an e-mail address, and one ``end-user`` per requester
  address;
- tickets (``/incremental/tickets/cursor``): the category in a custom drop-down field
  (``CATEGORY_FIELD_ID``, value ``contact_reason_<category>``, also a tag), ``via.channel``
  (a phone ticket is ``voice``), no priority where the world says ``normal`` (Zendesk's
  priority is optional), ``generated_timestamp`` = the last change;
- ticket events (``/incremental/ticket_events``): one audit per world event, with child
  events: ``Create`` children plus the description comment for a new ticket, a ``Comment``,
  a ``Change`` of ``status``, a ``SatisfactionRating``; one audit per time entry with a
  ``Change`` of the Time Tracking field (``TIME_SPENT_FIELD_ID``, seconds);
- satisfaction ratings: the answered ones with the world's scores, an ``offered`` one for
  every solved ticket the requester did not rate;
- groups (one per team) and group memberships (each agent's default group; admins also
  belong to a second group, not as their default).

Ids: an agent's user id is its ``agent_id``, a ticket's its ``ticket_id``; a ``created``
event's id is its audit's id, every other world event's id its child event's id, a time
entry's id its child event's id, a rating's id its event's id: the adapter reads them back
unchanged. Other ids (audits of other events, ``Create`` children, the description
comments) are offset far above the world's.

Zendesk's behaviour reproduced: cursor export with base64 cursors (``"<ts>.0||<id>|"``),
``end_of_stream`` with an ``after_cursor`` on every page, ``include=users``; the time-based
event export never splits a second and repeats the last one (``end_time``) on its final
page; lists with ``page[size]`` (at most 100) end on ``meta.has_more`` false while
``links.next`` is still set, offset paging without it; items changed in the minute before
"now" are left out of the exports and a ``start_time`` inside that minute is refused (now:
the world's clock, unless the config names another); ``url``s name the account's canonical
host, not the one called; authentication by ``Bearer <token>`` or API token
(``<agent e-mail>/token:<token>``, basic); exports and ratings for admins only (403 for an
agent). Configuration (``zendesk`` in the server's config):

    export_requests_per_minute  the incremental exports' limit (Zendesk: 10); null = none
    rate_window_s               the window that limit counts in (60; shorter in tests)
    rate_limit_body             the body of an injected 429: "export" (JSON, Retry-After),
                                "text" (text/plain, Retry-After), "edge" (JSON, none)
    now                         unix seconds the last-minute exclusion counts from
                                (null = the world's clock)

The whole helpdesk is held in memory, rebuilt when the world's files change.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

PREFIX = "/api/v2/"
CANONICAL = "https://ops-demo.zendesk.com"
CATEGORY_FIELD_ID = 360000001001
TIME_SPENT_FIELD_ID = 360000001002
CATEGORY_VALUE = "contact_reason_{category}"
AGENT_DOMAIN = "support.example.com"
VIA_CHANNELS = {"email": "email", "chat": "chat", "web": "web", "phone": "voice"}
VIA_TEXT = {"email": "Mail", "chat": "Chat", "web": "Web form", "phone": "Voice"}
GROUP_BASE = 360000002000
MEMBERSHIP_BASE = 360000003000
AUDIT_BASE = 10**12  # audits of world events other than "created"
TIME_AUDIT_BASE = 2 * 10**12  # audits of time entries
CREATE_CHILD_BASE = 3 * 10**12  # Create children and description comments: 4 per ticket
RATING_CHILD_BASE = 4 * 10**12  # SatisfactionRating children
OFFERED_BASE = 5 * 10**12  # ratings offered and never answered
END_USER_BASE = 10**13
EXPORT_PAGE_MAX = 1000
LIST_PAGE_MAX = 100
RECENT_S = 60
ADMIN_ONLY = ("incremental/", "satisfaction_ratings")
DEFAULT_CONFIG: dict[str, Any] = {
    "export_requests_per_minute": None,
    "rate_window_s": 60,
    "rate_limit_body": "export",
    "now": None,
}
RATE_LIMIT_BODIES = ("export", "text", "edge")
_CURSOR = re.compile(r"^(\d+)(?:\.\d+)?\|\|(\d+)\|$")


def validate_config(config: Any) -> dict[str, Any]:
    """The ``zendesk`` config, defaults filled in; raises ValueError naming a bad key."""
    if not isinstance(config, Mapping):
        raise ValueError("zendesk must be an object")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"zendesk: unknown keys {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    out = {**DEFAULT_CONFIG, **config}
    limit = out["export_requests_per_minute"]
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ValueError("zendesk.export_requests_per_minute must be a whole number >= 1 or null")
    window = out["rate_window_s"]
    if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
        raise ValueError("zendesk.rate_window_s must be a number of seconds > 0")
    if out["rate_limit_body"] not in RATE_LIMIT_BODIES:
        raise ValueError(f"zendesk.rate_limit_body must be one of {list(RATE_LIMIT_BODIES)}")
    now = out["now"]
    if now is not None and (type(now) is not int or now < 0):
        raise ValueError("zendesk.now must be unix seconds (a whole number) or null")
    return out


@dataclass
class Answer:
    status: int
    body: str
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0  # data rows served


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps(body, separators=(",", ":")), headers=headers or {})


def _invalid(description: str) -> _Refused:
    return _Refused(_json(422, {"error": "InvalidValue", "description": description}))


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(value: str) -> str:
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid("The cursor is not one this account issued") from None


def _end_user_id(email: str) -> int:
    """A stable id per requester address (the same in every world that has it)."""
    digest = hashlib.blake2b(email.encode(), digest_size=6).digest()
    return END_USER_BASE + int.from_bytes(digest, "big") % END_USER_BASE


def _seconds(column: pa.ChunkedArray) -> list[int | None]:
    micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    return [None if v is None else v // 1_000_000 for v in micros]


def _read(path: Path) -> list[dict[str, Any]]:
    table = pq.read_table(path)
    rows = table.to_pylist()
    for name in table.column_names:
        if pa.types.is_timestamp(table.schema.field(name).type):
            for row, value in zip(rows, _seconds(table.column(name)), strict=True):
                row[name] = value
    return rows


def _slug(name: str) -> str:
    return ".".join(re.sub(r"[^a-z0-9]+", "", part) for part in name.lower().split()) or "agent"


# --- the account, built from the world's files ------------------------------------------------


@dataclass
class _Account:
    clock: int
    users: dict[int, dict[str, Any]]
    staff: dict[str, str]  # e-mail -> role of agents and admins
    tickets: list[dict[str, Any]]  # ordered by (generated_timestamp, id)
    ticket_keys: list[tuple[int, int]]
    audits: list[dict[str, Any]]  # ordered by (timestamp, id)
    audit_times: list[int]
    ratings: list[dict[str, Any]]  # ordered by id
    rating_times: list[int]  # each rating's created_at, unix seconds
    groups: list[dict[str, Any]]  # ordered by (name, id)
    memberships: list[dict[str, Any]]  # ordered by id


def build_account(world_dir: Path) -> _Account:
    api = world_dir / "api"
    info = json.loads((world_dir / "world.json").read_text())
    clock = math.floor(datetime.fromisoformat(info["clock"].replace("Z", "+00:00")).timestamp())
    agents = _read(api / "agents.parquet")
    tickets = _read(api / "tickets.parquet")
    events = sorted(
        _read(api / "ticket_events.parquet"), key=lambda e: (e["created_at"], e["event_id"])
    )
    entries = sorted(
        _read(api / "time_entries.parquet"), key=lambda t: (t["logged_at"], t["time_entry_id"])
    )

    teams = sorted({a["team"] for a in agents})
    group_of = {team: GROUP_BASE + i for i, team in enumerate(teams)}
    groups = [
        {
            "url": f"{CANONICAL}/api/v2/groups/{group_of[team]}.json",
            "id": group_of[team],
            "is_public": True,
            "name": team,
            "description": f"the {team} team",
            "default": i == 0,
            "deleted": False,
            "created_at": _iso(clock - 400 * 86_400),
            "updated_at": _iso(clock - 400 * 86_400),
        }
        for i, team in enumerate(teams)
    ]
    users: dict[int, dict[str, Any]] = {}
    staff: dict[str, str] = {}
    memberships: list[dict[str, Any]] = []
    first_of_team: set[str] = set()
    for agent in sorted(agents, key=lambda a: a["agent_id"]):
        role = "agent" if agent["team"] in first_of_team else "admin"
        first_of_team.add(agent["team"])
        email = f"{_slug(agent['agent_name'])}@{AGENT_DOMAIN}"
        left = not agent["active"]
        uid = agent["agent_id"]
        users[uid] = _user(uid, agent["agent_name"], email, role, clock - 400 * 86_400)
        users[uid].update(
            default_group_id=group_of[agent["team"]],
            active=not (left and uid % 2),  # one who left is deactivated, the next suspended
            suspended=left and not uid % 2,
        )
        staff[email] = role
        memberships.append(_membership(uid, group_of[agent["team"]], True, clock))
        if role == "admin" and agent["team"] != teams[-1]:
            memberships.append(_membership(uid, group_of[teams[-1]], False, clock))
    fallback_agent = min(users) if users else 0

    by_ticket: dict[int, dict[str, Any]] = {}
    ticket_rows = []
    for row in tickets:
        requester = _end_user_id(row["requester_email"])
        if requester not in users:
            users[requester] = _user(
                requester,
                row["requester_email"].split("@")[0].strip(),
                row["requester_email"],
                "end-user",
                row["created_at"],
            )
        by_ticket[row["ticket_id"]] = {**row, "requester_id": requester}
        ticket_rows.append(row)

    audits: list[dict[str, Any]] = []
    status_of: dict[int, str] = {}
    rated: dict[int, dict[str, Any]] = {}
    solved_at: dict[int, int] = {}
    for event in events:
        ticket = by_ticket.get(event["ticket_id"])
        if ticket is None:
            continue
        author = {
            "agent": ticket["assignee_id"] or fallback_agent,
            "end_user": ticket["requester_id"],
            "system": -1,
        }[event["author_role"]]
        audits.append(_audit(event, ticket, author, status_of))
        if event["event_type"] == "satisfaction_rated":
            rated[ticket["ticket_id"]] = event
        if event["new_status"] == "solved":
            solved_at.setdefault(ticket["ticket_id"], event["created_at"])
    last_seconds: dict[int, int] = {}
    for entry in entries:
        ticket = by_ticket.get(entry["ticket_id"])
        if ticket is None:
            continue
        audits.append(_time_audit(entry, last_seconds.get(entry["ticket_id"])))
        last_seconds[entry["ticket_id"]] = entry["minutes"] * 60
    audits.sort(key=lambda a: (a["timestamp"], a["id"]))

    ratings = [_rating(event, by_ticket[event["ticket_id"]]) for event in rated.values()]
    ratings += [
        _offered(by_ticket[ticket_id], moment)
        for ticket_id, moment in solved_at.items()
        if ticket_id not in rated
    ]
    ratings.sort(key=lambda r: r["id"])

    serialized = sorted(
        (_ticket(row, by_ticket[row["ticket_id"]], last_seconds, rated) for row in ticket_rows),
        key=lambda t: (t["generated_timestamp"], t["id"]),
    )
    return _Account(
        clock=clock,
        users=users,
        staff=staff,
        tickets=serialized,
        ticket_keys=[(t["generated_timestamp"], t["id"]) for t in serialized],
        audits=audits,
        audit_times=[a["timestamp"] for a in audits],
        ratings=ratings,
        rating_times=[_unix(r["created_at"]) for r in ratings],
        groups=sorted(groups, key=lambda g: (g["name"], g["id"])),
        memberships=sorted(memberships, key=lambda m: m["id"]),
    )


def _user(uid: int, name: str, email: str, role: str, since: int) -> dict[str, Any]:
    return {
        "id": uid,
        "url": f"{CANONICAL}/api/v2/users/{uid}.json",
        "name": name,
        "email": email,
        "created_at": _iso(since),
        "updated_at": _iso(since),
        "time_zone": "UTC",
        "iana_time_zone": "Etc/UTC",
        "phone": None,
        "locale": "en-US",
        "organization_id": None,
        "role": role,
        "role_type": 4 if role == "admin" else None,
        "verified": True,
        "active": True,
        "suspended": False,
        "default_group_id": None,
        "tags": [],
        "user_fields": {},
    }


def _membership(user_id: int, group_id: int, default: bool, clock: int) -> dict[str, Any]:
    mid = MEMBERSHIP_BASE + user_id * 2 + (0 if default else 1)
    return {
        "url": f"{CANONICAL}/api/v2/group_memberships/{mid}.json",
        "id": mid,
        "user_id": user_id,
        "group_id": group_id,
        "default": default,
        "created_at": _iso(clock - 400 * 86_400),
        "updated_at": _iso(clock - 400 * 86_400),
    }


def _ticket(
    row: dict[str, Any],
    ticket: dict[str, Any],
    last_seconds: dict[int, int],
    rated: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    value = CATEGORY_VALUE.format(category=row["category"])
    fields = [
        {"id": CATEGORY_FIELD_ID, "value": value},
        {"id": TIME_SPENT_FIELD_ID, "value": last_seconds.get(row["ticket_id"])},
    ]
    rating = rated.get(row["ticket_id"])
    return {
        "url": f"{CANONICAL}/api/v2/tickets/{row['ticket_id']}.json",
        "id": row["ticket_id"],
        "external_id": None,
        "via": {
            "channel": VIA_CHANNELS[row["channel"]],
            "source": {"from": {}, "to": {}, "rel": None},
        },
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "type": None,
        "subject": row["subject"],
        "raw_subject": row["subject"],
        "description": f"{row['subject']} (see the first comment)",
        "priority": None if row["priority"] == "normal" else row["priority"],
        "status": row["status"],
        "recipient": None,
        "requester_id": ticket["requester_id"],
        "submitter_id": ticket["requester_id"],
        "assignee_id": row["assignee_id"],
        "organization_id": None,
        "group_id": None,
        "collaborator_ids": [],
        "follower_ids": [],
        "email_cc_ids": [],
        "problem_id": None,
        "has_incidents": False,
        "is_public": True,
        "due_at": None,
        "tags": [value],
        "custom_fields": fields,
        "fields": fields,
        "satisfaction_rating": None
        if rating is None
        else {"id": rating["event_id"], "score": rating["score"]},
        "brand_id": 360000000001,
        "allow_channelback": False,
        "allow_attachments": True,
        "generated_timestamp": row["updated_at"],
    }


def _audit(
    event: dict[str, Any], ticket: dict[str, Any], author: int, status_of: dict[int, str]
) -> dict[str, Any]:
    eid, ticket_id, kind = event["event_id"], event["ticket_id"], event["event_type"]
    via = VIA_TEXT[ticket["channel"]]
    if kind == "created":
        base = CREATE_CHILD_BASE + eid * 4
        children = [
            {
                "id": base,
                "via": via,
                "via_reference_id": None,
                "status": "new",
                "event_type": "Create",
            },
            {
                "id": base + 1,
                "via": via,
                "via_reference_id": None,
                "priority": None if ticket["priority"] == "normal" else ticket["priority"],
                "event_type": "Create",
            },
            {
                "id": base + 2,
                "via": via,
                "via_reference_id": None,
                "custom_ticket_fields": {
                    str(CATEGORY_FIELD_ID): CATEGORY_VALUE.format(category=ticket["category"])
                },
                "event_type": "Create",
            },
            _comment(
                base + 3, eid, author if author != -1 else ticket["requester_id"], True, ticket
            ),
        ]
        status_of[ticket_id] = "new"
        return _parent(eid, event, author, via, children)
    audit_id = AUDIT_BASE + eid
    if kind == "comment":
        children = [_comment(eid, audit_id, author, bool(event["is_public"]), ticket)]
    elif kind == "status_change":
        children = [
            {
                "id": eid,
                "via": via,
                "via_reference_id": None,
                "status": event["new_status"],
                "previous_value": status_of.get(ticket_id, "new"),
                "event_type": "Change",
            }
        ]
        status_of[ticket_id] = event["new_status"]
    else:  # satisfaction_rated: the rating itself is served by /satisfaction_ratings
        children = [
            {
                "id": RATING_CHILD_BASE + eid,
                "via": via,
                "via_reference_id": None,
                "type": "SatisfactionRating",
                "score": event["score"],
                "assignee_id": ticket["assignee_id"],
                "body": None,
                "event_type": "SatisfactionRating",
            }
        ]
    return _parent(audit_id, event, author, via, children)


def _comment(
    cid: int, audit_id: int, author: int, public: bool, ticket: dict[str, Any]
) -> dict[str, Any]:
    text = f"About ticket #{ticket['ticket_id']}: {ticket['subject']}"
    return {
        "id": cid,
        "via": {
            "channel": VIA_CHANNELS[ticket["channel"]],
            "source": {"from": {}, "to": {}, "rel": None},
        },
        "via_reference_id": None,
        "type": "Comment",
        "author_id": author,
        "body": text,
        "html_body": f'<div class="zd-comment" dir="auto">{text}</div>',
        "plain_body": text,
        "public": public,
        "attachments": [],
        "audit_id": audit_id,
        "event_type": "Comment",
    }


def _parent(
    audit_id: int, event: dict[str, Any], author: int, via: str, children: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": audit_id,
        "ticket_id": event["ticket_id"],
        "timestamp": event["created_at"],
        "created_at": _iso(event["created_at"]),
        "updater_id": author,
        "via": via,
        "system": {"client": "ops-demo", "ip_address": None, "location": None},
        "event_type": "Audit",
        "child_events": children,
    }


def _time_audit(entry: dict[str, Any], previous: int | None) -> dict[str, Any]:
    return {
        "id": TIME_AUDIT_BASE + entry["time_entry_id"],
        "ticket_id": entry["ticket_id"],
        "timestamp": entry["logged_at"],
        "created_at": _iso(entry["logged_at"]),
        "updater_id": entry["agent_id"],
        "via": "Web service",
        "system": {"client": "Time Tracking", "ip_address": None, "location": None},
        "event_type": "Audit",
        "child_events": [
            {
                "id": entry["time_entry_id"],
                "via": "Web service",
                "via_reference_id": None,
                "custom_ticket_fields": {str(TIME_SPENT_FIELD_ID): str(entry["minutes"] * 60)},
                "previous_value": None if previous is None else str(previous),
                "event_type": "Change",
            }
        ],
    }


def _rating(event: dict[str, Any], ticket: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": f"{CANONICAL}/api/v2/satisfaction_ratings/{event['event_id']}.json",
        "id": event["event_id"],
        "assignee_id": ticket["assignee_id"],
        "group_id": None,
        "requester_id": ticket["requester_id"],
        "ticket_id": ticket["ticket_id"],
        "score": event["score"],
        "created_at": _iso(event["created_at"]),
        "updated_at": _iso(event["created_at"]),
        "comment": None,
    }


def _offered(ticket: dict[str, Any], solved: int) -> dict[str, Any]:
    rid = OFFERED_BASE + ticket["ticket_id"]
    return {
        "url": f"{CANONICAL}/api/v2/satisfaction_ratings/{rid}.json",
        "id": rid,
        "assignee_id": ticket["assignee_id"],
        "group_id": None,
        "requester_id": ticket["requester_id"],
        "ticket_id": ticket["ticket_id"],
        "score": "offered",
        "created_at": _iso(solved),
        "updated_at": _iso(solved),
        "comment": None,
    }


# --- the HTTP side -----------------------------------------------------------------------------


def _query(raw: str) -> list[tuple[str, str]]:
    return parse_qsl(raw, keep_blank_values=True)


def _one(query: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in query if k == name]
    return values[-1] if values else None


def _int(query: list[tuple[str, str]], name: str) -> int | None:
    value = _one(query, name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _invalid(f"{name} must be a whole number, not {value!r}") from None


def _page_size(query: list[tuple[str, str]], name: str, largest: int) -> int:
    size = _int(query, name)
    if size is None:
        return largest
    if size < 1:
        raise _invalid(f"{name} must be at least 1")
    return min(size, largest)


def _link(path: str, params: Iterable[tuple[str, Any]]) -> str:
    return f"{CANONICAL}{path}?{urlencode(list(params))}"


class ZendeskApi:
    """Answers ``/api/v2/…`` requests from the world directory (see the module's docstring)."""

    name = "zendesk"

    def __init__(self, world_dir: Path, token: str) -> None:
        self.world_dir = world_dir
        self.token = token
        self._lock = threading.Lock()
        self._account: tuple[Any, _Account] | None = None
        self._exports: deque[float] = deque()

    def reset(self) -> None:
        with self._lock:
            self._exports.clear()

    def account(self) -> _Account:
        files = [self.world_dir / "world.json"] + [
            self.world_dir / "api" / f"{n}.parquet"
            for n in ("agents", "tickets", "ticket_events", "time_entries")
        ]
        signature = tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in (f.stat() for f in files))
        with self._lock:
            if self._account is None or self._account[0] != signature:
                self._account = (signature, build_account(self.world_dir))
            return self._account[1]

    def answer(
        self, target: str, headers: Mapping[str, str], config: Mapping[str, Any], fault: str | None
    ) -> Answer:
        """The answer to ``GET target`` (path and query). ``fault``: a fault the server chose
        to inject ("429", "500", "502", "503"), answered in Zendesk's manner once the caller
        is known."""
        parts = urlsplit(target)
        resource = parts.path[len(PREFIX) :].removesuffix(".json").strip("/")
        query = _query(parts.query)
        routes = {
            "incremental/tickets/cursor": self._tickets,
            "incremental/ticket_events": self._ticket_events,
            "satisfaction_ratings": self._ratings,
            "users": self._users,
            "groups": self._groups,
            "group_memberships": self._memberships,
        }
        if resource not in routes:
            return Answer(
                404, "<html><body><h1>This page does not exist</h1></body></html>", "text/html"
            )
        try:
            account = self.account()
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            return _json(
                503,
                {
                    "error": "ServiceUnavailable",
                    "description": f"the demo world cannot be read: {exc}",
                },
            )
        role = self._caller(headers, account)
        if role is None:
            return _json(
                401,
                {"error": "Could not authenticate you"},
                {"WWW-Authenticate": 'Basic realm="Web Password"'},
            )
        if role != "admin" and resource.startswith(ADMIN_ONLY):
            return _json(
                403,
                {"error": "Forbidden", "description": "Only admins may read this resource."},
            )
        if fault is not None:
            return self._fault(fault, config)
        if resource.startswith("incremental/"):
            refused = self._throttle(config)
            if refused is not None:
                return refused
        try:
            answer = routes[resource](account, query, config)
        except _Refused as refused:
            return refused.answer
        answer.headers.update(
            {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "699", "x-zendesk-api-version": "v2"}
        )
        return answer

    # authentication, faults, throttling

    def _caller(self, headers: Mapping[str, str], account: _Account) -> str | None:
        """The caller's role: a bearer token is an admin's OAuth token; an API token signs
        in as the agent or admin whose e-mail it names."""
        auth = headers.get("Authorization", "")
        if auth == f"Bearer {self.token}":
            return "admin"
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not user.endswith("/token") or password != self.token:
            return None
        return account.staff.get(user.removesuffix("/token").strip().lower())

    @staticmethod
    def _fault(fault: str, config: Mapping[str, Any]) -> Answer:
        if fault == "429":
            kind = config["rate_limit_body"]
            if kind == "text":
                return Answer(
                    429,
                    "Too many API requests in the last minute",
                    "text/plain",
                    {"Retry-After": "1"},
                )
            if kind == "edge":
                return _json(
                    429,
                    {
                        "detail": "The edge refused the request: too many requests",
                        "status": "429",
                        "title": "Rate limited",
                    },
                )
            return _export_limit(1)
        if fault == "500":
            return _json(
                500, {"error": "InternalError", "description": "Something went wrong (injected)"}
            )
        status = int(fault)
        return Answer(
            status,
            f"<html><body><h1>{status}</h1><p>upstream gateway (injected)</p></body></html>",
            "text/html",
        )

    def _throttle(self, config: Mapping[str, Any]) -> Answer | None:
        limit = config["export_requests_per_minute"]
        if not limit:
            return None
        window = config["rate_window_s"]
        now = time.monotonic()
        with self._lock:
            while self._exports and self._exports[0] <= now - window:
                self._exports.popleft()
            if len(self._exports) >= limit:
                return _export_limit(max(1, math.ceil(self._exports[0] + window - now)))
            self._exports.append(now)
        return None

    @staticmethod
    def _now(account: _Account, config: Mapping[str, Any]) -> int:
        return config["now"] if config["now"] is not None else account.clock

    # the exports

    def _tickets(
        self, account: _Account, query: list[tuple[str, str]], config: Mapping[str, Any]
    ) -> Answer:
        size = _page_size(query, "per_page", EXPORT_PAGE_MAX)
        visible = bisect.bisect_left(
            account.ticket_keys, (self._now(account, config) - RECENT_S, -1)
        )
        cursor = _one(query, "cursor")
        if cursor:
            match = _CURSOR.match(_unb64(cursor))
            if match is None:
                raise _invalid("The cursor is not one this account issued")
            position = (int(match[1]), int(match[2]))
            start = bisect.bisect_right(account.ticket_keys, position)
        else:
            since = self._start_time(account, query, config)
            position = (since, 0)
            start = bisect.bisect_left(account.ticket_keys, (since, -1))
        stop = max(start, min(start + size, visible))
        page = account.tickets[start:stop]
        if page:
            position = (page[-1]["generated_timestamp"], page[-1]["id"])
        after = _b64(f"{position[0]}.0||{position[1]}|")
        kept = [(k, v) for k, v in query if k in ("per_page", "include")]
        body: dict[str, Any] = {"tickets": page}
        if "users" in (_one(query, "include") or "").split(","):
            ids = dict.fromkeys(
                uid
                for t in page
                for uid in (t["requester_id"], t["submitter_id"], t["assignee_id"])
                if uid
            )
            body["users"] = [account.users[uid] for uid in ids if uid in account.users]
        body.update(
            after_url=_link("/api/v2/incremental/tickets/cursor.json", [("cursor", after), *kept]),
            after_cursor=after,
            before_url=None,
            before_cursor=None,
            end_of_stream=stop >= visible,
        )
        return Answer(200, json.dumps(body, separators=(",", ":")), rows=len(page))

    def _start_time(
        self, account: _Account, query: list[tuple[str, str]], config: Mapping[str, Any]
    ) -> int:
        since = _int(query, "start_time")
        if since is None:
            raise _invalid("start_time is required (unix seconds)")
        if since > self._now(account, config) - RECENT_S:
            raise _invalid("start_time is too recent: use one at least a minute in the past")
        return since

    def _ticket_events(
        self, account: _Account, query: list[tuple[str, str]], config: Mapping[str, Any]
    ) -> Answer:
        size = _page_size(query, "per_page", EXPORT_PAGE_MAX)
        since = self._start_time(account, query, config)
        times = account.audit_times
        visible = bisect.bisect_left(times, self._now(account, config) - RECENT_S)
        start = bisect.bisect_left(times, since)
        stop = max(start, min(start + size, visible))
        while start < stop < visible and times[stop] == times[stop - 1]:
            stop += 1  # a second is never split across pages
        done = stop >= visible
        if stop > start:
            end_time = times[stop - 1] if done else times[stop - 1] + 1
        else:
            end_time = since
        comments = "comment_events" in (_one(query, "include") or "").split(",")
        page = account.audits[start:stop]
        if not comments:
            page = [
                {
                    **a,
                    "child_events": [c for c in a["child_events"] if c["event_type"] != "Comment"],
                }
                for a in page
            ]
        kept = [(k, v) for k, v in query if k in ("include", "per_page")]
        body = {
            "ticket_events": page,
            "next_page": _link(
                "/api/v2/incremental/ticket_events.json", [*kept, ("start_time", end_time)]
            ),
            "count": len(page),
            "end_of_stream": done,
            "end_time": end_time,
        }
        return Answer(200, json.dumps(body, separators=(",", ":")), rows=len(page))

    # the lists

    def _ratings(
        self, account: _Account, query: list[tuple[str, str]], config: Mapping[str, Any]
    ) -> Answer:
        since, until = _int(query, "start_time"), _int(query, "end_time")
        score = _one(query, "score")
        wanted = {
            None: None,
            "received": ("good", "bad"),
            "good": ("good",),
            "bad": ("bad",),
            "offered": ("offered",),
            "unoffered": ("unoffered",),
        }
        if score not in wanted:
            raise _invalid(f"score {score!r} is not a score filter")
        rows = [
            r
            for r, created in zip(account.ratings, account.rating_times, strict=True)
            if (since is None or created >= since)
            and (until is None or created <= until)
            and (wanted[score] is None or r["score"] in wanted[score])
        ]
        return _listing(
            "/api/v2/satisfaction_ratings.json", "satisfaction_ratings", rows, ("id",), query
        )

    def _users(
        self, account: _Account, query: list[tuple[str, str]], config: Mapping[str, Any]
    ) -> Answer:
        roles = {v for k, v in query if k in ("role", "role[]")}
        unknown = roles - {"end-user", "agent", "admin"}
        if unknown:
            raise _invalid(f"role {sorted(unknown)[0]!r} is not a role")
        rows = [u for _, u in sorted(account.users.items()) if not roles or u["role"] in roles]
        return _listing("/api/v2/users.json", "users", rows, ("id",), query)

    def _groups(
        self, account: _Account, query: list[tuple[str, str]], config: Mapping[str, Any]
    ) -> Answer:
        return _listing("/api/v2/groups.json", "groups", account.groups, ("name", "id"), query)

    def _memberships(
        self, account: _Account, query: list[tuple[str, str]], config: Mapping[str, Any]
    ) -> Answer:
        return _listing(
            "/api/v2/group_memberships.json",
            "group_memberships",
            account.memberships,
            ("id",),
            query,
        )


def _export_limit(retry_after: int) -> Answer:
    return _json(
        429,
        {
            "error": "APIRateLimitExceeded",
            "description": "Too many incremental export requests this minute",
        },
        {"Retry-After": str(retry_after)},
    )


def _unix(iso: str) -> int:
    return math.floor(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _listing(
    path: str,
    key: str,
    rows: list[dict[str, Any]],
    order: tuple[str, ...],
    query: list[tuple[str, str]],
) -> Answer:
    """A list page: cursor paging with ``page[size]`` (``page[after]``), else offset paging
    (``page``, ``per_page``) as Zendesk falls back to."""
    if _one(query, "page[size]") is None and _one(query, "page[after]") is None:
        size = _page_size(query, "per_page", LIST_PAGE_MAX)
        number = _int(query, "page") or 1
        page = rows[(number - 1) * size : number * size]
        more = number * size < len(rows)
        body = {
            key: page,
            "next_page": _link(path, [("page", number + 1), ("per_page", size)]) if more else None,
            "previous_page": _link(path, [("page", number - 1), ("per_page", size)])
            if number > 1
            else None,
            "count": len(rows),
        }
        return Answer(200, json.dumps(body, separators=(",", ":")), rows=len(page))
    size = _page_size(query, "page[size]", LIST_PAGE_MAX)
    keys = [[r[k] for k in order] for r in rows]
    after = _one(query, "page[after]")
    start = 0
    if after:
        try:
            token = json.loads(_unb64(after))
            position = token["v"]
            if token.get("o") != ",".join(order) or len(position) != len(order):
                raise ValueError
            start = bisect.bisect_right(keys, position)
        except (ValueError, KeyError, TypeError):
            raise _invalid("page[after] is not a cursor of this list") from None
    page = rows[start : start + size]
    more = start + size < len(rows)

    def cursor(row: dict[str, Any]) -> str:
        return _b64(
            json.dumps({"o": ",".join(order), "v": [row[k] for k in order]}, separators=(",", ":"))
        )

    first, last = (cursor(page[0]), cursor(page[-1])) if page else (None, None)
    body = {
        key: page,
        "meta": {"has_more": more, "after_cursor": last, "before_cursor": first},
        "links": {
            "prev": _link(path, [("page[before]", first), ("page[size]", size)]) if first else None,
            "next": _link(path, [("page[after]", last), ("page[size]", size)]) if last else None,
        },
    }
    return Answer(200, json.dumps(body, separators=(",", ":")), rows=len(page))
