"""The demo world's Meta Ads campaigns behind the Marketing API (Graph API, following Meta's
reference for v24.0; versions v20.0 to v25.0 answer).

- ``GET /{version}/act_{id}``: the ad account (``currency``, ``timezone_name``);
- ``GET /{version}/act_{id}/insights?level=campaign&time_increment=1&time_range=…``: one row
  per campaign and day, spend and counts as text, ``actions`` (link clicks and pixel
  purchases, the world's platform conversions) absent when there were none;
- ``GET /{version}/act_{id}/campaigns``: the campaigns, archived ones only when
  ``effective_status`` asks for them; ``daily_budget`` in minor units (cents).

Pages hold ``limit`` rows (at most 500); ``paging.cursors`` stay on every page and
``paging.next`` (a URL with the access token, as Meta builds it) is absent on the last.
Authentication: ``Authorization: Bearer`` or ``access_token``; an unknown token is error 190.
Throttling is Meta's: every ``throttle_every``-th request answers HTTP 400 with error code
80004 and the ``x-business-use-case-usage`` header telling ``estimated_time_to_regain_access``
(``regain_minutes``); every answer carries the usage headers. The server's injected faults
come as Meta sends them (429 -> code 17, 5xx -> code 1 or 2).

The world gives each ad channel one currency (Meta's: USD) and counts days in UTC: the one ad
account (``AD_ACCOUNT``) reports in them. A campaign's Meta id is the number of its world id
(``meta-0007`` -> 7); the demo mapping file's ``campaign_id_format`` turns it back.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow.parquet as pq

from ops_demo import DEMO_TOKENS

PATH = re.compile(r"/(?P<version>v\d+\.\d+)/act_(?P<account>\d+)(?:/(?P<edge>insights|campaigns))?")
VERSIONS = tuple(f"v{n}.0" for n in range(20, 26))
CHANNEL = "meta_ads"
AD_ACCOUNT = "100200300400"
TIME_ZONE = "Etc/UTC"
PURCHASE = "offsite_conversion.fb_pixel_purchase"
PAGE_MAX = 500
DEMO_TOKEN = DEMO_TOKENS["OPS_META_ACCESS_TOKEN"]
DEFAULT_CONFIG: dict[str, Any] = {"throttle_every": None, "regain_minutes": 0}
OBJECTIVES = {
    "acquisition": "OUTCOME_SALES",
    "retargeting": "OUTCOME_ENGAGEMENT",
    "brand": "OUTCOME_AWARENESS",
}
STATUSES = {"active": "ACTIVE", "paused": "PAUSED", "ended": "ARCHIVED"}
DEFAULT_STATES = ("ACTIVE", "PAUSED", "IN_PROCESS", "WITH_ISSUES")


def validate_config(config: Any) -> dict[str, Any]:
    """The ``meta_ads`` config, defaults filled in; raises ValueError naming a bad key."""
    if not isinstance(config, Mapping):
        raise ValueError("meta_ads must be an object")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"meta_ads: unknown keys {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    out = {**DEFAULT_CONFIG, **config}
    every = out["throttle_every"]
    if every is not None and (type(every) is not int or every < 1):
        raise ValueError("meta_ads.throttle_every must be a whole number >= 1 or null")
    regain = out["regain_minutes"]
    if isinstance(regain, bool) or not isinstance(regain, int | float) or regain < 0:
        raise ValueError("meta_ads.regain_minutes must be a number >= 0")
    return out


@dataclass
class Answer:
    status: int
    body: str
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    rows: int = 0


def _graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def build_account(world_dir: Path) -> dict[str, Any]:
    """The ad account's currency, campaigns and insights rows, from the world."""
    campaigns, days, currency = [], [], "USD"
    names: dict[str, str] = {}
    for row in pq.read_table(world_dir / "api" / "campaigns.parquet").to_pylist():
        if row["channel"] != CHANNEL:
            continue
        number = str(int(row["campaign_id"].rsplit("-", 1)[1]))
        names[number] = row["campaign_name"]
        currency = row["currency"]
        item = {
            "id": number,
            "name": row["campaign_name"],
            "objective": OBJECTIVES[row["objective"]],
            "status": STATUSES[row["status"]],
            "effective_status": STATUSES[row["status"]],
            "daily_budget": str(round(row["daily_budget"] * 100)),
            "start_time": f"{row['start_date'].isoformat()}T00:00:00+0000",
            "updated_time": _graph_time(row["updated_at"]),
        }
        if row["end_date"] is not None:
            item["stop_time"] = f"{row['end_date'].isoformat()}T23:59:59+0000"
        campaigns.append(item)
    for row in pq.read_table(world_dir / "api" / "ad_performance.parquet").to_pylist():
        if row["channel"] != CHANNEL:
            continue
        number = str(int(row["campaign_id"].rsplit("-", 1)[1]))
        day = row["date"].isoformat()
        item = {
            "account_id": AD_ACCOUNT,
            "campaign_id": number,
            "campaign_name": names.get(number, ""),
            "spend": f"{float(row['spend']):.2f}",
            "impressions": str(row["impressions"]),
            "clicks": str(row["clicks"]),
            "date_start": day,
            "date_stop": day,
            "account_currency": row["currency"],
        }
        actions = []
        if row["clicks"]:
            actions.append({"action_type": "link_click", "value": str(row["clicks"])})
        conversions = row["platform_conversions"]
        if conversions:
            actions.append({"action_type": PURCHASE, "value": f"{conversions:g}"})
        if actions:
            item["actions"] = actions
        days.append(item)
    campaigns.sort(key=lambda c: int(c["id"]))
    days.sort(key=lambda d: (d["date_start"], int(d["campaign_id"])))
    return {"currency": currency, "campaigns": campaigns, "days": days}


def _usage(calls: int, regain_minutes: float) -> dict[str, str]:
    """Meta's usage headers (JSON inside the header text)."""
    return {
        "x-business-use-case-usage": json.dumps(
            {
                AD_ACCOUNT: [
                    {
                        "type": "ads_insights",
                        "call_count": calls,
                        "total_cputime": 1,
                        "total_time": 1,
                        "estimated_time_to_regain_access": regain_minutes,
                        "ads_api_access_tier": "standard_access",
                    }
                ]
            }
        ),
        "x-ad-account-usage": json.dumps(
            {
                "acc_id_util_pct": 1,
                "reset_time_duration": 0,
                "ads_api_access_tier": "standard_access",
            }
        ),
        "x-app-usage": json.dumps({"call_count": 1, "total_cputime": 1, "total_time": 1}),
    }


class MetaAdsApi:
    """Answers ``/{version}/act_{id}…`` requests from the world directory."""

    name = "meta_ads"

    def __init__(self, world_dir: Path, token: str = DEMO_TOKEN) -> None:
        self.world_dir = Path(world_dir)
        self.token = token
        self._lock = threading.Lock()
        self._world: tuple[Any, dict[str, Any]] | None = None
        self._calls = 0

    def reset(self) -> None:
        with self._lock:
            self._calls = 0

    def account(self) -> dict[str, Any]:
        files = [self.world_dir / "api" / f"{n}.parquet" for n in ("campaigns", "ad_performance")]
        signature = tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in (f.stat() for f in files))
        with self._lock:
            if self._world is None or self._world[0] != signature:
                self._world = (signature, build_account(self.world_dir))
            return self._world[1]

    def answer(
        self, target: str, headers: Mapping[str, str], config: Mapping[str, Any], fault: str | None
    ) -> Answer:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        match = PATH.fullmatch(parts.path)
        if match is None:
            return _error(400, 2500, "Unknown path components: " + parts.path, "OAuthException")
        if match["version"] not in VERSIONS:
            return _error(
                400,
                2635,
                f"(#2635) You are calling a deprecated version of the Ads API. Please update to "
                f"the latest version: {VERSIONS[-1]}.",
                "OAuthException",
            )
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        token = token or query.get("access_token", "")
        if token != self.token:
            return _error(
                400,
                190,
                "Invalid OAuth access token - Cannot parse access token",
                "OAuthException",
            )
        with self._lock:
            self._calls += 1
            calls = self._calls
        every = config["throttle_every"]
        if fault == "429" or (every is not None and calls % every == 0):
            answer = _error(
                400,
                80004,
                "(#80004) There have been too many calls to this ad-account. Wait a bit and try "
                "again. For more info, please refer to "
                "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
                "OAuthException",
                subcode=2446079,
            )
            answer.headers = _usage(100, config["regain_minutes"])
            return answer
        if fault is not None:
            code = 2 if fault == "503" else 1
            text = "Service temporarily unavailable" if code == 2 else "An unknown error occurred"
            return _error(int(fault), code, text, "OAuthException")
        if match["account"] != AD_ACCOUNT:
            return _error(
                400,
                100,
                f"Unsupported get request. Object with ID 'act_{match['account']}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this "
                "operation.",
                "GraphMethodException",
                subcode=33,
            )
        account = self.account()
        edge = match["edge"]
        if edge is None:
            body = {"currency": account["currency"], "timezone_name": TIME_ZONE}
            return Answer(
                200, json.dumps({**body, "id": f"act_{AD_ACCOUNT}"}), headers=_usage(1, 0)
            )
        if edge == "insights":
            rows = self._insights(account, query)
        else:
            rows = self._campaigns(account, query)
        if isinstance(rows, Answer):
            return rows
        return self._page(
            headers.get("Host") or "graph.facebook.com", parts.path, query, rows, token
        )

    def _insights(self, account: dict[str, Any], query: Mapping[str, str]) -> Any:
        if query.get("level") != "campaign" or query.get("time_increment") != "1":
            return _error(
                400,
                100,
                "(#100) the demo serves level=campaign and time_increment=1 only",
                "OAuthException",
            )
        try:
            span = json.loads(query.get("time_range", ""))
            since, until = str(span["since"]), str(span["until"])
        except (ValueError, KeyError, TypeError):
            return _error(400, 100, "(#100) time_range must be {since, until}", "OAuthException")
        fields = set(query.get("fields", "").split(","))
        rows = [d for d in account["days"] if since <= d["date_start"] <= until]
        keep = fields | {"date_start", "date_stop"}
        return [{k: v for k, v in d.items() if k in keep} for d in rows]

    def _campaigns(self, account: dict[str, Any], query: Mapping[str, str]) -> Any:
        try:
            states = json.loads(query["effective_status"]) if "effective_status" in query else None
        except ValueError:
            return _error(400, 100, "(#100) effective_status must be a list", "OAuthException")
        wanted = set(states or DEFAULT_STATES)
        fields = set(query.get("fields", "id").split(",")) | {"id"}
        rows = [c for c in account["campaigns"] if c["effective_status"] in wanted]
        return [{k: v for k, v in c.items() if k in fields} for c in rows]

    def _page(
        self, host: str, path: str, query: Mapping[str, str], rows: list[dict[str, Any]], token: str
    ) -> Answer:
        try:
            limit = min(max(int(query.get("limit", "25")), 1), PAGE_MAX)
            start = int(base64.urlsafe_b64decode(query["after"])) if query.get("after") else 0
        except ValueError:
            return _error(400, 100, "(#100) invalid limit or after cursor", "OAuthException")
        stop = start + limit
        page = rows[start:stop]

        def cursor(at: int) -> str:
            return base64.urlsafe_b64encode(str(at).encode()).decode()

        body: dict[str, Any] = {"data": page}
        if page:
            body["paging"] = {"cursors": {"before": cursor(start), "after": cursor(stop)}}
            if stop < len(rows):
                following = {**query, "access_token": token, "after": cursor(stop)}
                body["paging"]["next"] = f"http://{host}{path}?{urlencode(following)}"
        return Answer(200, json.dumps(body), headers=_usage(1, 0), rows=len(page))


def _error(status: int, code: int, message: str, kind: str, subcode: int | None = None) -> Answer:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = secrets.token_urlsafe(12)
    return Answer(status, json.dumps({"error": error}))
