"""Support from Zendesk Support (API v2): the contract's tickets, ticket events, time entries
and agents, read the way Zendesk asks bulk readers to read it (docs/sources.md, "Zendesk
Support").

- tickets: the cursor-based incremental ticket export, with the requesters side-loaded
  (``include=users``); the next run resumes from the last ``after_cursor``, or from the run's
  interval end when the export went past it;
- ticket events and time entries: the time-based incremental ticket-event export with the
  comments side-loaded, read once per load for both entities; time entries are the changes
  of the Time Tracking app's "time spent last update (sec)" field; satisfaction events come
  from the satisfaction ratings list;
- agents: the users who are agents or admins, their teams from their default group
  membership, their cost from the mapping file.

What Zendesk does not know (categories, the time-tracking field, agents' hourly cost) comes
from the mapping file's ``zendesk`` section, validated when the readers are built, before
any request. Row-level rules and quarantine are ``rows_to_batch``'s, as for every source.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import requests

from ops_warehouse.errors import SourceConfigError, SourceDataError, SourceUnavailableError
from ops_warehouse.pipeline.contracts import DELETED_COLUMN, Entity
from ops_warehouse.pipeline.contracts import entity as contract_entity
from ops_warehouse.pipeline.sources import mapping
from ops_warehouse.pipeline.sources.arrow_rows import (
    ARROW_TYPES,
    Batch,
    Origin,
    arrow_schema,
    rows_to_batch,
)
from ops_warehouse.pipeline.sources.vendor_http import error_text, json_page, retry_after_seconds
from ops_warehouse.pipeline.sources.window import Window, advance_cursor
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)

# how errors name this reader
WHO = "support (Zendesk)"

Reader = Callable[[Entity, dict, Window], Iterator[Batch]]

TICKET_EXPORT = "/api/v2/incremental/tickets/cursor.json"
EVENT_EXPORT = "/api/v2/incremental/ticket_events.json"
RATINGS = "/api/v2/satisfaction_ratings.json"
USERS = "/api/v2/users.json"
GROUPS = "/api/v2/groups.json"
MEMBERSHIPS = "/api/v2/group_memberships.json"

# Zendesk's largest pages: 1000 rows for the incremental exports, 100 for cursor-paged lists.
EXPORT_PAGE_MAX = 1000
LIST_PAGE_MAX = 100
# The exports leave out what changed in the minute before a request and refuse a start_time
# inside that minute.
RECENT_S = 60

_TICKETS = contract_entity("tickets")
CATEGORIES: tuple[str, ...] = _TICKETS.allowed["category"]
CHANNELS: tuple[str, ...] = _TICKETS.allowed["channel"]
PRIORITIES: tuple[str, ...] = _TICKETS.allowed["priority"]

# Zendesk status -> contract status. "hold" (waiting on a third party) is open work that is
# not the agent's move, as "pending" is: the open backlog counts both.
STATUSES = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "pending",
    "solved": "solved",
    "closed": "closed",
}
DELETED = "deleted"

# via.channel -> contract channel, before the mapping file's additions; any other channel
# (web form, API, help center, mobile SDK, rules, follow-ups) is the mapping's channel_default.
VIA_CHANNELS = {
    "email": "email",
    "voice": "phone",
    "chat": "chat",
    "native_messaging": "chat",
    "messaging": "chat",
    "sms": "chat",
    "whatsapp": "chat",
    "facebook": "chat",
    "instagram_dm": "chat",
    "twitter": "chat",
    "line": "chat",
    "wechat": "chat",
    "telegram": "chat",
}

# Tickets whose requester has no e-mail address (callers known by phone, API-made users)
# keep their place in the counts under an address that can match no customer (RFC 2606).
NO_EMAIL = "zendesk-user-{user_id}@zendesk.invalid"
NO_REQUESTER = "no-requester@zendesk.invalid"
NO_SUBJECT = "(no subject)"

COMMENT_KINDS = ("Comment", "VoiceComment")
SYSTEM_USER = -1
AGENT_ROLES = ("agent", "admin")


# --- the mapping file's section ----------------------------------------------------------


def _agent_key(value: Any, path: str) -> str:
    """A ``by_agent`` key: an agent's Zendesk user id, or their e-mail address (lower case)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return str(int(text))
        if "@" in text and " " not in text:
            return text.lower()
    raise mapping.MappingError(
        f"mapping file: {path} must be an agent's Zendesk user id or e-mail address"
    )


def _days(value: Any, path: str) -> int:
    days = mapping.integer(value, path)
    if days < 0:
        raise mapping.MappingError(f"mapping file: {path} must be 0 or more days, not {days}")
    return days


COST = mapping.Section(
    {
        "hourly_cost": mapping.Key(
            mapping.decimal(), required=True, doc="cost of one hour of the agent's time"
        ),
        "currency": mapping.Key(mapping.currency, required=True, doc="currency of hourly_cost"),
    },
    doc="an hourly cost and its currency",
)

SECTION = mapping.register(
    "zendesk",
    mapping.Section(
        {
            "tickets": mapping.Section(
                {
                    "category_field_id": mapping.Key(
                        mapping.integer,
                        doc="id of the custom ticket field (a drop-down) holding the category",
                    ),
                    "category_values": mapping.Key(
                        mapping.mapping_of(mapping.text, mapping.one_of(*CATEGORIES)),
                        default={},
                        doc="value of that field -> category",
                    ),
                    "category_tags": mapping.Key(
                        mapping.mapping_of(mapping.text, mapping.one_of(*CATEGORIES)),
                        default={},
                        doc="ticket tag -> category, when the field gives none",
                    ),
                    "category_default": mapping.Key(
                        mapping.one_of(*CATEGORIES),
                        default="other",
                        doc="category of a ticket neither the field nor a tag places",
                    ),
                    "channels": mapping.Key(
                        mapping.mapping_of(mapping.text, mapping.one_of(*CHANNELS)),
                        default={},
                        doc="via.channel -> channel, added to and overriding the built-in table",
                    ),
                    "channel_default": mapping.Key(
                        mapping.one_of(*CHANNELS),
                        default="web",
                        doc="channel of a via.channel no table names",
                    ),
                    "priority_default": mapping.Key(
                        mapping.one_of(*PRIORITIES),
                        default="normal",
                        doc="priority of a ticket without one (Zendesk's priority is optional)",
                    ),
                }
            ),
            "time_tracking": mapping.Section(
                {
                    "time_spent_field_id": mapping.Key(
                        mapping.integer,
                        doc="id of the Time Tracking app's 'time spent last update (sec)' "
                        "field; unset: no time entries",
                    ),
                }
            ),
            "satisfaction": mapping.Section(
                {
                    "lookback_days": mapping.Key(
                        _days,
                        default=30,
                        doc="days of ratings re-read on each run (a rating is listed by the "
                        "time it was offered and answered later)",
                    ),
                }
            ),
            "agents": mapping.Section(
                {
                    "team_names": mapping.Key(
                        mapping.mapping_of(mapping.text, mapping.text),
                        default={},
                        doc="group name -> team, where they differ",
                    ),
                    "team_default": mapping.Key(
                        mapping.text,
                        default="unassigned",
                        doc="team of an agent in no group",
                    ),
                    "cost": mapping.Section(
                        {
                            "default": mapping.Key(COST, doc="cost of every agent not listed"),
                            "by_team": mapping.Key(
                                mapping.mapping_of(mapping.text, COST),
                                default={},
                                doc="team -> cost",
                            ),
                            "by_agent": mapping.Key(
                                mapping.mapping_of(_agent_key, COST),
                                default={},
                                doc="agent's user id or e-mail -> cost (wins over by_team)",
                            ),
                        }
                    ),
                }
            ),
        },
        doc="Zendesk Support as the support source",
    ),
)


# --- values --------------------------------------------------------------------------------


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _unix(value: Any) -> int | None:
    """Whole unix seconds of an epoch number or an ISO 8601 text; None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return math.floor(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return math.floor(float(text))
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return math.floor(moment.timestamp())
    return None


def _user_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _kind(child: Mapping[str, Any]) -> Any:
    return child.get("event_type") or child.get("type")


_ABSENT = object()


def _field_change(child: Mapping[str, Any], name: str) -> Any:
    """The new value a Create/Change child event gives a ticket field (``_ABSENT``: it changes
    another one). Zendesk names the field as a key of its own (``"status": "solved"``); the
    ``field_name``/``value`` spelling is accepted too."""
    if name in child:
        return child[name]
    if child.get("field_name") == name:
        return child.get("value")
    return _ABSENT


def _custom_change(child: Mapping[str, Any], field_id: int) -> Any:
    """The new value a child event gives custom field ``field_id`` (``_ABSENT``: another)."""
    fields = child.get("custom_ticket_fields")
    if isinstance(fields, Mapping) and str(field_id) in {str(k) for k in fields}:
        return next(v for k, v in fields.items() if str(k) == str(field_id))
    return _field_change(child, str(field_id))


def _custom_field(ticket: Mapping[str, Any], field_id: int) -> Any:
    for key in ("custom_fields", "fields"):
        for entry in ticket.get(key) or ():
            if isinstance(entry, Mapping) and _user_id(entry.get("id")) == field_id:
                return entry.get("value")
    return None


def _minutes(seconds: Any) -> Any:
    """Whole minutes of a seconds value, half a minute and more rounding up (90 s -> 2 min,
    89 s -> 1 min); a value that is no number is passed on as served, so that the row goes
    to quarantine naming it."""
    try:
        number = Decimal(str(seconds).strip())
    except InvalidOperation:
        return seconds
    if not number.is_finite():
        return seconds
    return int((number / 60).to_integral_value(ROUND_HALF_UP))


# --- Zendesk's rows -> contract rows (no I/O) ------------------------------------------------


@dataclass
class TicketRows:
    rows: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)  # ticket_id, updated_at
    later: bool = False  # a ticket changed at or after the window end was served


def ticket_rows(
    tickets: Sequence[Mapping[str, Any]],
    users: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
    end: float | None = None,
) -> TicketRows:
    """Contract rows of one export page (``config``: the section's ``tickets`` part).

    ``updated_at`` is Zendesk's ``generated_timestamp``, the time of the ticket's latest
    change system updates included (Zendesk's own ``updated_at`` ignores them, a deletion
    among them), which is what the export is ordered by. Tickets changed at or after ``end``
    are left for a later run."""
    emails = {_user_id(u.get("id")): u.get("email") for u in users if isinstance(u, Mapping)}
    out = TicketRows()
    for ticket in tickets:
        changed = _unix(ticket.get("generated_timestamp"))
        if changed is None:
            changed = _unix(ticket.get("updated_at"))
        if end is not None and changed is not None and changed >= end:
            out.later = True
            continue
        updated_at = _iso(changed) if changed is not None else ticket.get("updated_at")
        if ticket.get("status") == DELETED:
            out.deleted.append({"ticket_id": ticket.get("id"), "updated_at": updated_at})
            continue
        status = ticket.get("status")
        out.rows.append(
            {
                "ticket_id": ticket.get("id"),
                "requester_email": _requester_email(ticket, emails),
                "subject": ticket.get("subject") or ticket.get("raw_subject") or NO_SUBJECT,
                "category": _category(ticket, config),
                "channel": _channel(ticket, config),
                "priority": ticket.get("priority") or config["priority_default"],
                "status": STATUSES.get(status, status) if isinstance(status, str) else status,
                "assignee_id": ticket.get("assignee_id"),
                "created_at": ticket.get("created_at"),
                "updated_at": updated_at,
            }
        )
    return out


def _requester_email(ticket: Mapping[str, Any], emails: Mapping[int | None, Any]) -> str:
    requester = _user_id(ticket.get("requester_id"))
    if requester is None:
        return NO_REQUESTER
    email = emails.get(requester)
    if isinstance(email, str) and email.strip():
        return email
    return NO_EMAIL.format(user_id=requester)


def _category(ticket: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The category field's value through ``category_values`` (a value that already is a
    category counts as itself), else the first tag ``category_tags`` knows, else the default."""
    field_id = config["category_field_id"]
    if field_id is not None:
        value = _custom_field(ticket, field_id)
        if value not in (None, ""):
            text = str(value)
            if text in config["category_values"]:
                return config["category_values"][text]
            if text in CATEGORIES:
                return text
    for tag in ticket.get("tags") or ():
        if tag in config["category_tags"]:
            return config["category_tags"][tag]
    return config["category_default"]


def _channel(ticket: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    via = ticket.get("via")
    channel = via.get("channel") if isinstance(via, Mapping) else via
    if channel in config["channels"]:
        return config["channels"][channel]
    return VIA_CHANNELS.get(channel, config["channel_default"])


@dataclass
class AuditRows:
    events: list[dict[str, Any]] = field(default_factory=list)
    time_entries: list[dict[str, Any]] = field(default_factory=list)
    later: bool = False  # an event at or after the window end was served


def audit_rows(
    audits: Sequence[Mapping[str, Any]],
    role_of: Callable[[Any], str],
    time_field: int | None,
    end: float | None = None,
) -> AuditRows:
    """Contract ticket events and time entries of one ticket-event export page.

    - an audit with ``Create`` child events is the ticket's creation: one ``created`` event,
      keyed by the audit's id; its comment (the ticket's description) is part of it;
    - every other ``Comment`` child is a ``comment`` (``is_public`` from ``public``), by its
      author, else the audit's updater;
    - a ``Change`` of ``status`` is a ``status_change`` (``hold`` reads ``pending``; a change to
      ``deleted`` is no event: the ticket leaves raw);
    - a ``Create``/``Change`` of the time-spent field with a non-zero value is a time entry
      by the updater;
    - other children (field changes, notifications, satisfaction ratings: read from their
      own list) are no rows. An event's time is its audit's."""
    out = AuditRows()
    for audit in audits:
        moment = _unix(audit.get("timestamp"))
        if moment is None:
            moment = _unix(audit.get("created_at"))
        if end is not None and moment is not None and moment >= end:
            out.later = True
            continue
        created_at = _iso(moment) if moment is not None else audit.get("created_at")
        ticket_id = audit.get("ticket_id")
        updater = audit.get("updater_id")
        children = [c for c in audit.get("child_events") or () if isinstance(c, Mapping)]
        creation = any(_kind(c) == "Create" for c in children)
        if creation:
            author = updater
            if author is None:
                author = next(
                    (c.get("author_id") for c in children if _kind(c) in COMMENT_KINDS), None
                )
            out.events.append(
                _event(audit.get("id"), ticket_id, created_at, "created", role_of(author))
            )
        for child in children:
            kind = _kind(child)
            if kind in COMMENT_KINDS and not creation:
                author = child.get("author_id", updater)
                out.events.append(
                    _event(
                        child.get("id"),
                        ticket_id,
                        created_at,
                        "comment",
                        role_of(author),
                        is_public=child.get("public"),
                    )
                )
            elif kind == "Change":
                status = _field_change(child, "status")
                if status is not _ABSENT and status != DELETED:
                    out.events.append(
                        _event(
                            child.get("id"),
                            ticket_id,
                            created_at,
                            "status_change",
                            role_of(updater),
                            new_status=STATUSES.get(status, status)
                            if isinstance(status, str)
                            else status,
                        )
                    )
            if kind in ("Create", "Change") and time_field is not None:
                seconds = _custom_change(child, time_field)
                if seconds is _ABSENT or seconds in (None, "") or _minutes(seconds) == 0:
                    continue
                out.time_entries.append(
                    {
                        "time_entry_id": child.get("id"),
                        "ticket_id": ticket_id,
                        "agent_id": updater,
                        "minutes": _minutes(seconds),
                        "logged_at": created_at,
                    }
                )
    return out


def _event(
    event_id: Any,
    ticket_id: Any,
    created_at: Any,
    event_type: str,
    author_role: str,
    *,
    is_public: Any = None,
    new_status: Any = None,
    score: Any = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ticket_id": ticket_id,
        "created_at": created_at,
        "event_type": event_type,
        "author_role": author_role,
        "is_public": is_public,
        "new_status": new_status,
        "score": score,
    }


def rating_rows(ratings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``satisfaction_rated`` events of the answered ratings (``offered``/``unoffered``: the
    requester gave no answer, no event); the time is the answer's (``updated_at``)."""
    rows = []
    for rating in ratings:
        score = str(rating.get("score") or "")
        answer = "good" if score.startswith("good") else "bad" if score.startswith("bad") else None
        if answer is None:
            continue
        rows.append(
            _event(
                rating.get("id"),
                rating.get("ticket_id"),
                rating.get("updated_at") or rating.get("created_at"),
                "satisfaction_rated",
                "end_user",
                score=answer,
            )
        )
    return rows


def agent_rows(
    users: Sequence[Mapping[str, Any]],
    groups: Sequence[Mapping[str, Any]],
    memberships: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Contract agents (``config``: the section's ``agents`` part) and, per row, why it goes
    to quarantine (None: it does not). The team is the name of the agent's default group
    (its default membership, else the user's default_group_id, else its oldest membership);
    active means active and not suspended; the cost is the mapping file's."""
    names = {_user_id(g.get("id")): g.get("name") for g in groups}
    default: dict[int | None, Any] = {}
    oldest: dict[int | None, Any] = {}
    for membership in sorted(memberships, key=lambda m: _user_id(m.get("id")) or 0):
        user = _user_id(membership.get("user_id"))
        oldest.setdefault(user, membership.get("group_id"))
        if membership.get("default"):
            default[user] = membership.get("group_id")
    rows: list[dict[str, Any]] = []
    reasons: list[str | None] = []
    for user in users:
        if user.get("role") not in AGENT_ROLES:
            continue
        agent_id = _user_id(user.get("id"))
        group = default.get(agent_id) or user.get("default_group_id") or oldest.get(agent_id)
        group_name = names.get(_user_id(group))
        team = (
            config["team_names"].get(group_name, group_name)
            if group_name
            else config["team_default"]
        )
        cost = _cost(agent_id, user.get("email"), team, config["cost"])
        rows.append(
            {
                "agent_id": user.get("id"),
                "agent_name": user.get("name"),
                "team": team,
                "hourly_cost": None
                if cost is None
                else str(cost["hourly_cost"].quantize(Decimal("0.01"), ROUND_HALF_UP)),
                "currency": None if cost is None else cost["currency"],
                "active": bool(user.get("active")) and not bool(user.get("suspended")),
            }
        )
        reasons.append(
            None
            if cost is not None
            else (
                f"no hourly cost for agent {agent_id} in the mapping file: add "
                f"zendesk.agents.cost.by_agent.{agent_id}, by_team.{team} or default"
            )
        )
    return rows, reasons


def _cost(
    agent_id: int | None, email: Any, team: str, costs: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    by_agent = costs["by_agent"]
    if str(agent_id) in by_agent:
        return by_agent[str(agent_id)]
    if isinstance(email, str) and email.strip().lower() in by_agent:
        return by_agent[email.strip().lower()]
    return costs["by_team"].get(team) or costs["default"]


# --- HTTP ------------------------------------------------------------------------------------

Params = Sequence[tuple[str, Any]]


class ZendeskClient:
    """GET requests to one Zendesk account, retried the way Zendesk asks.

    API-token sign-in (``{email}/token`` basic auth) when ``OPS_ZENDESK_EMAIL`` is set, else
    ``OPS_SUPPORT_API_TOKEN`` is an OAuth access token (bearer). A 429 waits ``Retry-After``
    (up to ``OPS_HTTP_BACKOFF_MAX_S``; one without it, as Zendesk's edge protection sends,
    backs off), as do 5xx answers, timeouts and dropped connections, up to
    ``OPS_HTTP_MAX_ATTEMPTS`` attempts. 401/403 stop at once naming the settings, 404 names
    the URL setting, 400/422 and malformed answers stop naming the URL: none is retried."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(self, settings: Settings) -> None:
        token = settings.support_api_token
        if not token:
            raise SourceConfigError(
                "support (Zendesk): OPS_SUPPORT_API_TOKEN is not set: set it to a Zendesk API "
                "token (with OPS_ZENDESK_EMAIL) or an OAuth access token of an admin of "
                f"{settings.support_api_url} (the settings have no default token)."
            )
        self.base_url = settings.support_api_url.rstrip("/")
        self.email = settings.zendesk_email.strip().removesuffix("/token")
        self.timeout = settings.http_timeout_s
        self.max_attempts = max(1, settings.http_max_attempts)
        self.backoff_max = settings.http_backoff_max_s
        self.session = requests.Session()
        if self.email:
            self.session.auth = (f"{self.email}/token", token)
        else:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"
        self.requests_made = 0
        self.waits: list[float] = []

    def close(self) -> None:
        self.session.close()

    def url(self, path: str, params: Params) -> str:
        return requests.Request("GET", self.base_url + path, params=list(params)).prepare().url

    def get(self, path: str, params: Params) -> tuple[dict[str, Any], str]:
        """The JSON object at ``path`` and the URL asked (for messages)."""
        url = self.url(path, params)
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            self.requests_made += 1
            try:
                response = self.session.get(url, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = exc.__class__.__name__
                wait = self._backoff(attempt)
            else:
                status = response.status_code
                if status == 200:
                    return json_page(response, url, WHO), url
                self._refuse(response, url)
                problem = f"{status}: {_description(response)}"
                retry_after = retry_after_seconds(response) if status == 429 else None
                wait = min(retry_after, self.backoff_max) if retry_after is not None else None
                if wait is None:
                    wait = self._backoff(attempt)
            if attempt < self.max_attempts:
                log.warning(
                    "support (Zendesk): %s from %s; attempt %d of %d again in %.1f s",
                    problem,
                    urlsplit(url).path,
                    attempt + 1,
                    self.max_attempts,
                    wait,
                )
                self.waits.append(wait)
                self.sleep(wait)
        raise SourceUnavailableError(
            f"support (Zendesk): {url} did not answer after {self.max_attempts} attempts "
            f"(last: {problem}): check OPS_SUPPORT_API_URL and Zendesk's status page; the "
            "task is retried."
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, 0.5 * 2 ** (attempt - 1))

    def _refuse(self, response: requests.Response, url: str) -> None:
        """Raise for the answers that come back the same on every attempt."""
        status = response.status_code
        who = (
            "OPS_SUPPORT_API_TOKEN and OPS_ZENDESK_EMAIL (an API token and its admin's e-mail)"
            if self.email
            else "OPS_SUPPORT_API_TOKEN (an OAuth access token; for an API token set "
            "OPS_ZENDESK_EMAIL as well)"
        )
        if status == 401:
            raise SourceConfigError(
                f"support (Zendesk): {url} refused the credentials (401: "
                f"{_description(response)}): check {who}."
            )
        if status == 403:
            raise SourceConfigError(
                f"support (Zendesk): {url} is forbidden to these credentials (403: "
                f"{_description(response)}): the incremental exports and satisfaction ratings "
                f"are for admins; check {who}."
            )
        if status == 404:
            raise SourceConfigError(
                f"support (Zendesk): {url} does not exist (404): check OPS_SUPPORT_API_URL "
                "(https://<subdomain>.zendesk.com)."
            )
        if 400 <= status < 500 and status != 429:
            raise SourceDataError(
                f"support (Zendesk): {url} refused the request ({status}: "
                f"{_description(response)}); the load stopped."
            )


def _description(response: requests.Response) -> str:
    """Zendesk's ``error``/``description`` (or an edge page's ``title``/``detail``)."""
    return error_text(response, ("error", "description", "title", "detail"), limit=160)


def _rows(page: Mapping[str, Any], key: str, url: str) -> list[Mapping[str, Any]]:
    rows = page.get(key)
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise SourceDataError(
            f"support (Zendesk): {url} is not a page of {key}: '{key}' is "
            f"{'missing' if rows is None else 'not a list of objects'} (keys served: "
            f"{', '.join(sorted(page)) or 'none'})."
        )
    return rows


def _end_of_stream(page: Mapping[str, Any], url: str) -> bool:
    value = page.get("end_of_stream")
    if not isinstance(value, bool):
        raise SourceDataError(
            f"support (Zendesk): {url} is a malformed export page: 'end_of_stream' is "
            f"{'missing' if value is None else repr(value)}, so the end of the stream cannot "
            "be told."
        )
    return value


# --- one load's readers ------------------------------------------------------------------------


def _backfill(state: Mapping[str, Any], window: Window) -> bool:
    """Whether the run covers an interval older than what was loaded (the stored contract
    cursor is at or after its end): it re-reads that interval and leaves the stored
    positions alone."""
    stored = state.get("cursor")
    return stored is not None and datetime.fromisoformat(stored) >= window.end


def _with_deletions(entity: Entity, batch: Batch, deleted: list[dict[str, Any]], url: str) -> Batch:
    """The batch plus one row per deleted ticket, ``DELETED_COLUMN`` true: the merge removes
    those tickets from raw (their other fields are empty; the row is never stored)."""
    if not deleted:
        return batch
    try:
        keys = pa.array([d["ticket_id"] for d in deleted], pa.int64())
        moments = pa.array([d["updated_at"] for d in deleted], pa.string()).cast(
            ARROW_TYPES["timestamp"]
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise SourceDataError(
            f"support (Zendesk): {url} served a deleted ticket without a readable id or time "
            f"({exc})."
        ) from None
    schema = arrow_schema(entity)
    columns = {
        f.name: pa.nulls(len(deleted), f.type)
        for f in schema
        if f.name not in ("ticket_id", "updated_at")
    }
    columns["ticket_id"], columns["updated_at"] = keys, moments
    removed = pa.table({f.name: columns[f.name] for f in schema}).append_column(
        DELETED_COLUMN, pa.array([True] * len(deleted), pa.bool_())
    )
    kept = batch.table.append_column(DELETED_COLUMN, pa.nulls(batch.table.num_rows, pa.bool_()))
    return Batch(pa.concat_tables([kept, removed], promote_options="default"), batch.quarantined)


class _Directory:
    """The account's agents and admins, groups and memberships: read once per load."""

    def __init__(self, account: _Account) -> None:
        self.account = account
        self._lists: dict[str, tuple[list[Mapping[str, Any]], str]] = {}
        self._agent_ids: set[int | None] | None = None

    def _list(
        self, path: str, key: str, params: Params = ()
    ) -> tuple[list[Mapping[str, Any]], str]:
        if path not in self._lists:
            rows: list[Mapping[str, Any]] = []
            url = ""
            for page, page_url in self.account.list_pages(path, key, params):
                rows += page
                url = url or page_url
            self._lists[path] = (rows, url)
        return self._lists[path]

    def agents(self) -> tuple[list[Mapping[str, Any]], str]:
        return self._list(USERS, "users", [("role[]", "agent"), ("role[]", "admin")])

    def groups(self) -> list[Mapping[str, Any]]:
        return self._list(GROUPS, "groups")[0]

    def memberships(self) -> list[Mapping[str, Any]]:
        return self._list(MEMBERSHIPS, "group_memberships")[0]

    def role_of(self, user_id: Any) -> str:
        """The contract's author role of a Zendesk user: agents and admins are ``agent``,
        Zendesk itself (user -1, or no user named) ``system``, anyone else ``end_user``."""
        uid = _user_id(user_id)
        if uid is None or uid == SYSTEM_USER:
            return "system"
        if self._agent_ids is None:
            self._agent_ids = {
                _user_id(u.get("id")) for u in self.agents()[0] if u.get("role") in AGENT_ROLES
            }
        return "agent" if uid in self._agent_ids else "end_user"


@dataclass
class _EventPage:
    rows: dict[str, list[dict[str, Any]]]  # entity name -> its rows of this page
    url: str


class _EventExport:
    """The ticket-event export of one load, read once for every entity it feeds (ticket
    events, time entries) whichever asks first: each page's rows wait in the other entity's
    queue until that one takes them (dlt reads its resources in turns)."""

    def __init__(self, account: _Account, consumers: Sequence[str], start: int) -> None:
        self.account = account
        self.start = start
        self.resume_at: int | None = None  # where the next run starts (None: unchanged)
        self._queues: dict[str, deque[_EventPage]] = {c: deque() for c in consumers}
        self._pages: Iterator[_EventPage] | None = None
        self._finished = False

    def take(self, name: str, window: Window) -> Iterator[_EventPage]:
        if self._pages is None:
            self._pages = self.account.event_pages(self, self.start, window)
        queue = self._queues[name]
        while True:
            while queue:
                yield queue.popleft()
            if self._finished:
                return
            page = next(self._pages, None)
            if page is None:
                self._finished = True
                continue
            for consumer, waiting in self._queues.items():
                waiting.append(_EventPage({consumer: page.rows.get(consumer, [])}, page.url))


class _Account:
    """One load's view of the Zendesk account: client, mapping, and what entities share."""

    EVENT_ENTITIES = ("ticket_events", "time_entries")

    def __init__(
        self,
        settings: Settings,
        client: ZendeskClient,
        config: Mapping[str, Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.export_page = max(1, min(settings.page_size, EXPORT_PAGE_MAX))
        self.list_page = max(1, min(settings.page_size, LIST_PAGE_MAX))
        self.directory = _Directory(self)
        self._events: _EventExport | None = None  # the load's shared export, once asked for

    def latest_start(self) -> int:
        """The latest start_time Zendesk accepts: a minute before now."""
        return math.floor(self.clock()) - RECENT_S

    def list_pages(
        self, path: str, key: str, params: Params = ()
    ) -> Iterator[tuple[list[Mapping[str, Any]], str]]:
        """Every page of a cursor-paged list (``page[size]``), to ``meta.has_more`` false:
        the last page still links a next one. An offset-paged answer (``next_page``) is
        followed too, on the configured host."""
        query = [*params, ("page[size]", self.list_page)]
        asked: set[str] = set()
        while True:
            page, url = self.client.get(path, query)
            yield _rows(page, key, url), url
            meta = page.get("meta")
            if isinstance(meta, Mapping):
                if not isinstance(meta.get("has_more"), bool):
                    raise SourceDataError(
                        f"support (Zendesk): {url} is a malformed page of {key}: "
                        "'meta.has_more' is missing, so the end of the list cannot be told."
                    )
                if not meta["has_more"]:
                    return
                after = meta.get("after_cursor")
                if not isinstance(after, str) or not after or after in asked:
                    raise SourceDataError(
                        f"support (Zendesk): {url} says more {key} follow but gives no new "
                        f"'meta.after_cursor' ({after!r})."
                    )
                asked.add(after)
                query = [*params, ("page[size]", self.list_page), ("page[after]", after)]
            elif "next_page" in page:
                following = page["next_page"]
                if not following:
                    return
                if following in asked:
                    raise SourceDataError(
                        f"support (Zendesk): {url} links to itself as its next page."
                    )
                asked.add(following)
                query = parse_qsl(urlsplit(str(following)).query)
            else:
                raise SourceDataError(
                    f"support (Zendesk): {url} is a page of {key} without 'meta' or "
                    "'next_page', so the end of the list cannot be told."
                )

    # tickets

    def read_tickets(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        """The cursor-based export from the stored ``after_cursor`` (or ``start_time``) on.

        Reading stops at the end of the stream, or at the first page holding a ticket changed
        at or after the window end (the export is ordered by that time): those tickets are not
        loaded, and the next run starts at the window end so that it reads them. Only an
        ``after_cursor`` of a run that reached the end of the stream is kept: it is positioned
        before the tickets Zendesk held back (changed in the last minute)."""
        backfill = _backfill(state, window)
        end = window.end.timestamp()
        base: list[tuple[str, Any]] = [("per_page", self.export_page), ("include", "users")]
        if backfill:
            query = [
                ("start_time", min(math.floor(window.start.timestamp()), self.latest_start())),
                *base,
            ]
        elif state.get("after_cursor"):
            query = [("cursor", state["after_cursor"]), *base]
        else:
            query = [
                ("start_time", min(int(state.get("start_time", 0)), self.latest_start())),
                *base,
            ]
        tickets_config = self.config["tickets"]
        while True:
            page, url = self.client.get(TICKET_EXPORT, query)
            tickets = _rows(page, "tickets", url)
            users = page.get("users") if isinstance(page.get("users"), list) else []
            finished = _end_of_stream(page, url)
            mapped = ticket_rows(tickets, users, tickets_config, end)
            batch = rows_to_batch(entity, mapped.rows, window.end, Origin(url))
            advance_cursor(state, batch.table, entity.cursor)
            yield _with_deletions(entity, batch, mapped.deleted, url)
            after = page.get("after_cursor")
            if mapped.later:
                if not backfill:
                    state["start_time"] = math.floor(end)
                    state.pop("after_cursor", None)
                return
            if finished:
                if not backfill and isinstance(after, str) and after:
                    state["after_cursor"] = after
                    state.pop("start_time", None)
                return
            if (
                not isinstance(after, str)
                or not after
                or (not tickets and dict(query).get("cursor") == after)
            ):
                raise SourceDataError(
                    f"support (Zendesk): {url} is a malformed export page: not the end of the "
                    f"stream, yet no new 'after_cursor' to go on from ({after!r})."
                )
            query = [("cursor", after), *base]

    # ticket events and time entries

    def event_pages(self, export: _EventExport, start: int, window: Window) -> Iterator[_EventPage]:
        """The time-based ticket-event export from ``start`` on: ``next_page`` is followed as
        ``start_time=end_time`` (Zendesk never splits a second across pages, and repeats the
        last one on the next run) to the end of the stream or to the first page with an event
        at or after the window end. Sets ``export.resume_at``."""
        end = window.end.timestamp()
        time_field = self.config["time_tracking"]["time_spent_field_id"]
        since = start
        while True:
            query = [
                ("start_time", since),
                ("include", "comment_events"),
                ("per_page", self.export_page),
            ]
            page, url = self.client.get(EVENT_EXPORT, query)
            audits = _rows(page, "ticket_events", url)
            finished = _end_of_stream(page, url)
            mapped = audit_rows(audits, self.directory.role_of, time_field, end)
            yield _EventPage(
                {"ticket_events": mapped.events, "time_entries": mapped.time_entries}, url
            )
            end_time = _unix(page.get("end_time"))
            if mapped.later:
                export.resume_at = math.floor(end)
                return
            if finished:
                resume = since if end_time is None else max(since, end_time)
                export.resume_at = min(resume, math.floor(end))
                return
            if end_time is None or end_time <= since:
                raise SourceDataError(
                    f"support (Zendesk): {url} is a malformed export page: not the end of the "
                    f"stream, yet its 'end_time' ({page.get('end_time')!r}) does not move past "
                    f"the start_time asked ({since})."
                )
            since = end_time

    def _events_start(self, state: Mapping[str, Any], window: Window) -> tuple[int, bool]:
        backfill = _backfill(state, window)
        start = (
            math.floor(window.start.timestamp()) if backfill else int(state.get("start_time", 0))
        )
        return min(start, self.latest_start()), backfill

    def _event_export(self, name: str, start: int) -> _EventExport:
        """The load's shared export, or one of this entity's own when it must start earlier
        than the shared one did (it was not loaded with the other last time)."""
        if self._events is None:
            self._events = _EventExport(self, self.EVENT_ENTITIES, start)
        if self._events.start <= start:
            return self._events
        return _EventExport(self, [name], start)

    def _export_batches(
        self, entity: Entity, state: dict, window: Window, key: str
    ) -> Iterator[Batch]:
        start, backfill = self._events_start(state, window)
        export = self._event_export(entity.name, start)
        seen: set[Any] = set()
        for page in export.take(entity.name, window):
            rows = []
            for row in page.rows[entity.name]:
                if row[key] is None or row[key] not in seen:
                    seen.add(row[key])
                    rows.append(row)
            batch = rows_to_batch(entity, rows, window.end, Origin(page.url))
            advance_cursor(state, batch.table, entity.cursor)
            yield batch
        if not backfill and export.resume_at is not None:
            state["start_time"] = export.resume_at

    def read_ticket_events(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        """Audit events from the shared export, then the satisfaction ratings (each event
        once per run: the export repeats its boundary second)."""
        yield from self._export_batches(entity, state, window, "event_id")
        yield from self._ratings(entity, state, window)

    def read_time_entries(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        if self.config["time_tracking"]["time_spent_field_id"] is None:
            log.info(
                "support (Zendesk): no time entries: the mapping file names no "
                "zendesk.time_tracking.time_spent_field_id"
            )
            return
        yield from self._export_batches(entity, state, window, "time_entry_id")

    def _ratings(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        """Satisfaction ratings offered since the last run's window end minus the look-back
        (every rating on a first load). Zendesk lists a rating by when it was offered; the
        answer comes later, so recent days are read again on every run."""
        backfill = _backfill(state, window)
        lookback = self.config["satisfaction"]["lookback_days"] * 86_400
        if backfill:
            since: int | None = math.floor(window.start.timestamp()) - lookback
        else:
            until = state.get("ratings_until")
            since = None if until is None else int(until) - lookback
        params = [] if since is None else [("start_time", max(since, 0))]
        seen: set[Any] = set()
        for ratings, url in self.list_pages(RATINGS, "satisfaction_ratings", params):
            rows = [r for r in rating_rows(ratings) if r["event_id"] not in seen]
            seen.update(r["event_id"] for r in rows)
            batch = rows_to_batch(entity, rows, window.end, Origin(url))
            advance_cursor(state, batch.table, entity.cursor)
            yield batch
        if not backfill:
            state["ratings_until"] = math.floor(window.end.timestamp())

    # agents

    def read_agents(self, entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        users, url = self.directory.agents()
        rows, reasons = agent_rows(
            users, self.directory.groups(), self.directory.memberships(), self.config["agents"]
        )
        yield rows_to_batch(entity, rows, window.end, Origin(url), reasons)


def readers(settings: Settings, stack: ExitStack) -> dict[str, Reader]:
    """Each support entity's reader. The mapping file is validated and the token checked here,
    before any request."""
    config = mapping.load(settings.mapping_file).section("zendesk")
    client = ZendeskClient(settings)
    stack.callback(client.close)
    account = _Account(settings, client, config)
    return {
        "tickets": account.read_tickets,
        "ticket_events": account.read_ticket_events,
        "time_entries": account.read_time_entries,
        "agents": account.read_agents,
    }
