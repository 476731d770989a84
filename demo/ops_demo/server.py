"""The demo source server: the marketing and support HTTP APIs of ``docs/sources.md``, served
from a demo world directory, with switchable fault injection.

The world directory holds ``api/<entity>.parquet`` (columns = the contract fields) and
``world.json``. The generator replaces these files atomically when the world advances;
every data request stats ``world.json`` and the entity's parquet file (two ``os.stat``
calls) and reloads that entity when either changed.

Rows are serialized to JSON once per (re)load and kept as a list of strings next to numpy
arrays of the sort key, so a page is one ``searchsorted`` plus one ``str.join``.

Paging
    Marketing endpoints answer ``{"data": [...], "next_page_token": str | null}``; support
    incremental endpoints answer ``{"<entity>": [...], "after_cursor": str,
    "end_of_stream": bool}``. Page tokens and cursors are opaque (urlsafe base64 of JSON)
    and hold the sort key of the last row served, so the next page starts strictly after
    that row even when the world has been reloaded in between. A token carries the query
    window it was issued for; when one is given, the window parameters of the request are
    ignored (a support ``cursor`` takes precedence over ``start_time``).

Fault injection (``POST /_demo/config``, :meth:`DemoServer.configure` or CLI flags)
    ``fault_rate``       share (0..1) of data requests that fail
    ``faults``           kinds picked at random: "429", "500", "502", "503", "timeout"
    ``retry_after_s``    ``Retry-After`` header (whole seconds) sent with a 429
    ``timeout_s``        a "timeout" fault waits this long, then answers 503
    ``slow_ms``          delay added to every data response
    ``seed``             seeds the fault RNG (reproducible runs); null = random
    ``schema``           per entity ``{"add": {field: value}, "drop": [field],
                         "rename": {old: new}}``, applied to every real row served
                         (drop, then rename, then add; an added field replaces one of the
                         same name)
    ``bad_rows``         per entity, a list of raw JSON values served as given (no schema
                         change) after the last real row of a page stream: once per stream,
                         i.e. per chain of tokens/cursors starting from a request without
                         one. The token counts the bad rows already served, so a support
                         cursor kept for the next incremental run does not serve them again,
                         while a fresh ``start_time`` (or a new marketing window) does.
                         Bad rows ignore the query filters.
    ``fail_after_rows``  per entity, serve at most N rows in total (the page reaching N is
                         cut short), then answer 500 to every request for it until reset:
                         a source crashing mid-load.
    ``zendesk``          the Zendesk dialect's own knobs (its export rate limit, the 429
                         body, its clock): see ``ops_demo.vendors.zendesk``
    ``shopify``          the Shopify dialect's own knobs (its query-cost bucket, the status
                         of THROTTLED, test orders): see ``ops_demo.vendors.shopify``
    ``hubspot``          the HubSpot dialect's own knobs (its secondly search limit, the
                         10,000-result cap, a missing scope): see ``ops_demo.vendors.hubspot``
    ``google_ads``       the Google Ads dialect's own knobs (page size, quota errors, token
                         lifetime): see ``ops_demo.vendors.google_ads``
    ``meta_ads``         the Meta Ads dialect's own knobs (throttling by error code 80004 and
                         its regain time): see ``ops_demo.vendors.meta_ads``

The support data is also served in Zendesk Support's dialect, under ``/api/v2/``
(``ops_demo.vendors.zendesk``: Zendesk's paths, paging, authentication and error bodies),
and the shop in Shopify's GraphQL Admin API at ``POST /admin/api/{version}/graphql.json``
(``ops_demo.vendors.shopify``), and the signups as HubSpot contacts at
``POST /crm/v3/objects/contacts/search`` (``ops_demo.vendors.hubspot``), and the
``google_ads`` and ``meta_ads`` channels' campaigns in Google Ads' GAQL reporting (``POST /token``,
``POST /v{N}/customers/{id}/googleAds:search``: ``ops_demo.vendors.google_ads``) and Meta's
Marketing API (``GET /{version}/act_{id}/insights``, ``…/campaigns``:
``ops_demo.vendors.meta_ads``); the delay and fault knobs apply to them as well.

``POST /_demo/config`` merges the given top-level keys into the current configuration
(``schema``, ``bad_rows`` and ``fail_after_rows`` are replaced whole); ``POST /_demo/reset``
restores the configuration the server was started with and zeroes the statistics.
The control API needs no token but answers loopback clients only; faults never apply to it.
Writes that a web page of another site could send (an ``Origin`` not the server's own, or
a form or text/plain body) get 403, so a page open in a browser cannot reconfigure it.

Run it: ``python -m ops_demo.server --dir DIR --port 8765 [--fault-rate 0.2]``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import errno
import ipaddress
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ops_demo import DEMO_TOKENS, with_demo_tokens
from ops_demo.vendors import google_ads, hubspot, meta_ads, shopify, zendesk
from ops_warehouse.pipeline.contracts import API_ENDPOINTS
from ops_warehouse.pipeline.contracts import entity as contract_entity
from ops_warehouse.settings import get_settings

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10000
FAULT_KINDS = ("429", "500", "502", "503", "timeout")
# the body types a web page may POST to another site without a CORS preflight
BROWSER_FORM_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
# printed once the server listens (``ops_demo.run`` waits for it)
LISTENING = "demo source server listening on"
DEFAULT_CONFIG: dict[str, Any] = {
    "fault_rate": 0.0,
    "faults": ["429", "500", "502", "503"],
    "retry_after_s": 1,
    "timeout_s": 5.0,
    "slow_ms": 0,
    "seed": None,
    "schema": {},
    "bad_rows": {},
    "fail_after_rows": {},
    # the Zendesk dialect's own knobs (ops_demo.vendors.zendesk), replaced whole
    "zendesk": dict(zendesk.DEFAULT_CONFIG),
    # the Shopify dialect's own knobs (ops_demo.vendors.shopify), replaced whole
    "shopify": dict(shopify.DEFAULT_CONFIG),
    # the HubSpot dialect's own knobs (ops_demo.vendors.hubspot), replaced whole
    "hubspot": dict(hubspot.DEFAULT_CONFIG),
    # the ad platforms' own knobs (ops_demo.vendors.google_ads, .meta_ads), replaced whole
    "google_ads": dict(google_ads.DEFAULT_CONFIG),
    "meta_ads": dict(meta_ads.DEFAULT_CONFIG),
}
_INT64_MIN = np.iinfo(np.int64).min
_MICROS = {"s": 1_000_000, "ms": 1000, "us": 1, "ns": 1}


# --- what each endpoint serves ---------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    entity: str
    path: str
    rows_key: str  # the JSON key holding the rows
    sort: tuple[str, ...]  # columns the rows are ordered (and paged) by
    style: str  # "pages" (page_token), "incremental" (cursor), "all" (one page)
    since: str | None = None  # parameter giving an inclusive lower bound on sort[0]
    until: str | None = None  # parameter giving an inclusive upper bound on sort[0]


def _stream(entity: str, sort: tuple[str, ...], style: str, **kw: str) -> _Stream:
    path, rows_key = API_ENDPOINTS[entity]
    return _Stream(entity, path, rows_key, sort, style, **kw)


STREAMS: dict[str, _Stream] = {
    s.entity: s
    for s in (
        _stream(
            "ad_performance",
            ("date", "campaign_id"),
            "pages",
            since="start_date",
            until="end_date",
        ),
        _stream("campaigns", ("campaign_id",), "pages"),
        _stream("signups", ("updated_at", "signup_id"), "pages", since="updated_since"),
        _stream("tickets", ("updated_at", "ticket_id"), "incremental", since="start_time"),
        _stream("ticket_events", ("created_at", "event_id"), "incremental", since="start_time"),
        _stream("time_entries", ("logged_at", "time_entry_id"), "incremental", since="start_time"),
        _stream("agents", ("agent_id",), "all"),
    )
}
_BY_PATH = {s.path: s for s in STREAMS.values()}


class BadRequest(ValueError):
    """A request parameter the server cannot use (answered with 400)."""


class WorldUnavailable(RuntimeError):
    """The world directory lacks a file the request needs (answered with 503)."""


# --- parsing request parameters --------------------------------------------------------


def _parse_date(name: str, value: str) -> int:
    """A ``YYYY-MM-DD`` parameter as days since the epoch."""
    try:
        return (date.fromisoformat(value) - date(1970, 1, 1)).days
    except ValueError:
        raise BadRequest(f"{name}={value!r} is not a date (YYYY-MM-DD)") from None


def _parse_timestamp(name: str, value: str) -> int:
    """An ISO 8601 timestamp parameter as microseconds since the epoch (naive = UTC)."""
    # an unencoded "+00:00" arrives as " 00:00" after query-string decoding
    for candidate in (value, value[::-1].replace(" ", "+", 1)[::-1]):
        try:
            ts = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise BadRequest(f"{name}={value!r} is not an ISO 8601 timestamp")


def _parse_unix(name: str, value: str) -> int:
    """A unix-seconds parameter as microseconds since the epoch."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise BadRequest(f"{name}={value!r} is not a unix timestamp in seconds")
    return round(seconds * 1_000_000)


_BOUND_PARSERS = {
    "start_date": _parse_date,
    "end_date": _parse_date,
    "updated_since": _parse_timestamp,
    "start_time": _parse_unix,
}


def _parse_page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        raise BadRequest(f"page_size={value!r} is not an integer") from None
    if size < 1:
        raise BadRequest(f"page_size must be at least 1, not {size}")
    return min(size, MAX_PAGE_SIZE)


def _encode_token(token: dict[str, Any]) -> str:
    raw = json.dumps(token, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_token(name: str, value: str, stream: _Stream) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        token = json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} is not a token this server issued") from None
    if not isinstance(token, dict) or "e" not in token:
        raise BadRequest(f"{name} is not a token this server issued")
    if token["e"] != stream.entity:
        raise BadRequest(f"{name} was issued for {token['e']}, not {stream.entity}")
    for key in ("g", "u", "b"):
        if key in token and (type(token[key]) is not int or (key == "b" and token[key] < 0)):
            raise BadRequest(f"{name} is malformed")
    if "k" in token and (not isinstance(token["k"], list) or len(token["k"]) != len(stream.sort)):
        raise BadRequest(f"{name} is malformed")
    return token


# --- serializing a world table ---------------------------------------------------------


def _kind_of(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    return "other"


def _epoch_micros(col: pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (null -> int64 min)."""
    unit = col.type.unit
    values = pc.fill_null(col.cast(pa.int64()), _INT64_MIN).to_numpy()
    nulls = values == _INT64_MIN
    values = values // 1000 if unit == "ns" else values * _MICROS[unit]
    values[nulls] = _INT64_MIN
    return values


def _epoch_days(col: pa.Array) -> np.ndarray:
    days = pc.fill_null(col.cast(pa.date32()).cast(pa.int32()), 0).to_numpy().astype(np.int64)
    days[col.is_null().to_numpy(zero_copy_only=False)] = _INT64_MIN
    return days


def _join(*parts: Any) -> pa.Array:
    """Element-wise string concatenation (arrays and scalars) in arrow's C++ kernel."""
    return pc.binary_join_element_wise(*parts, "")


def _values_json(col: pa.Array, kind: str) -> pa.Array:
    """JSON text of every value of a column (nulls not yet replaced)."""
    if kind == "timestamp":
        micros = _epoch_micros(col).astype("M8[us]")
        text = np.datetime_as_string(micros.astype("M8[s]"), unit="s")
        fractional = micros.astype(np.int64) % 1_000_000 != 0
        if fractional.any():
            text = np.where(fractional, np.datetime_as_string(micros, unit="us"), text)
        return _join('"', pa.array(text), 'Z"')
    if kind == "date":
        days = pc.fill_null(col.cast(pa.date32()).cast(pa.int32()), 0).to_numpy()
        return _join('"', pa.array(np.datetime_as_string(days.astype("M8[D]"))), '"')
    if kind == "decimal":
        cents = np.rint(pc.fill_null(col.cast(pa.float64()), 0.0).to_numpy() * 100)
        cents = np.nan_to_num(cents).astype(np.int64)
        units, hundredths = np.divmod(np.abs(cents), 100)
        sign = pa.array(np.where(cents < 0, "-", ""))
        frac = pc.utf8_lpad(pa.array(hundredths).cast(pa.string()), 2, "0")
        return _join('"', sign, pa.array(units).cast(pa.string()), ".", frac, '"')
    if kind == "int":
        return col.cast(pa.int64()).cast(pa.string())
    if kind == "bool":
        return pc.if_else(col, "true", "false")
    if kind == "text":
        col = col.cast(pa.string())
        quoted = _join('"', col, '"')
        escape = pc.fill_null(pc.match_substring_regex(col, r'["\\\x00-\x1f]'), False)
        if not pc.any(escape).as_py():
            return quoted
        # only strings with quotes, backslashes or control characters pay for json.dumps
        out = quoted.to_pylist()
        for i in np.flatnonzero(escape.to_numpy(zero_copy_only=False)):
            out[i] = json.dumps(col[i].as_py(), ensure_ascii=False)
        return pa.array(out, pa.string())
    if kind == "float":
        return pa.array(
            [
                json.dumps(v) if v is not None and math.isfinite(v) else "null"
                for v in col.cast(pa.float64()).to_pylist()
            ],
            pa.string(),
        )
    return pa.array([json.dumps(v, default=str) for v in col.to_pylist()], pa.string())


def _column_json(col: pa.Array, kind: str) -> pa.Array:
    """JSON text of every value, ``null`` for null (and NaN money or floats)."""
    missing = col.is_null()
    if kind in ("decimal", "float") and pa.types.is_floating(col.type):
        missing = pc.or_(missing, pc.fill_null(pc.is_nan(col), False))
    return pc.if_else(missing, "null", _values_json(col, kind))


def _sort_key(col: pa.Array) -> np.ndarray:
    kind = _kind_of(col.type)
    if kind == "timestamp":
        return _epoch_micros(col)
    if kind == "date":
        return _epoch_days(col)
    if kind == "int":
        return pc.fill_null(col.cast(pa.int64()), _INT64_MIN).to_numpy()
    if kind == "text":
        return np.asarray(pc.fill_null(col, "").to_numpy(zero_copy_only=False), dtype=str)
    raise TypeError(f"cannot page by a column of type {col.type}")


@dataclass(frozen=True)
class _Shape:
    """How the configured schema change reshapes the rows of one entity."""

    drop: frozenset[str] = frozenset()
    rename: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()  # (field, JSON text of its value)

    @classmethod
    def of(cls, spec: dict[str, Any] | None) -> _Shape:
        if not spec:
            return cls()
        add = tuple((k, json.dumps(v, ensure_ascii=False)) for k, v in spec.get("add", {}).items())
        return cls(
            frozenset(spec.get("drop", ())) | {k for k, _ in add},
            tuple(spec.get("rename", {}).items()),
            add,
        )


class _Table:
    """One entity of the world, sorted by its paging key, with each row's JSON text."""

    def __init__(self, stream: _Stream, table: pa.Table, source: Path) -> None:
        self.stream = stream
        missing = [c for c in stream.sort if c not in table.column_names]
        if missing:
            raise WorldUnavailable(f"{source} lacks the column(s) {missing} it is paged by")
        contract = {f.name: f.type for f in contract_entity(stream.entity).fields}
        table = table.combine_chunks()
        keys = [_sort_key(table.column(c).combine_chunks()) for c in stream.sort]
        order = np.lexsort(keys[::-1])
        table = table.take(pa.array(order))
        self.keys = [k[order] for k in keys]
        self.n = table.num_rows
        # contract fields first, in contract order; extra columns after, as in the file
        names = [n for n in contract if n in table.column_names]
        names += [n for n in table.column_names if n not in contract]
        self.columns: dict[str, pa.Array] = {}
        for name in names:
            col = table.column(name).combine_chunks()
            kind = contract.get(name, _kind_of(col.type))
            try:
                self.columns[name] = _column_json(col, kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError, ValueError):
                log.warning(
                    "%s: column %s (%s) is not a %s; serving it as stored",
                    source,
                    name,
                    col.type,
                    kind,
                )
                self.columns[name] = _column_json(col, _kind_of(col.type))
        self._lock = threading.Lock()
        self._rows: tuple[_Shape, list[str]] | None = None

    def rows(self, shape: _Shape) -> list[str]:
        """Every row's JSON text in paging order, reshaped by ``shape`` (cached)."""
        cached = self._rows
        if cached is not None and cached[0] == shape:
            return cached[1]
        with self._lock:
            if self._rows is None or self._rows[0] != shape:
                self._rows = (shape, self._build(shape))
            return self._rows[1]

    def _build(self, shape: _Shape) -> list[str]:
        rename = dict(shape.rename)
        parts: list[Any] = []
        for name, values in self.columns.items():
            if name not in shape.drop:
                parts += [json.dumps(rename.get(name, name), ensure_ascii=False) + ":", values, ","]
        added = ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in shape.add)
        if added:
            parts.append(added)
        elif parts:
            parts.pop()  # the comma after the last column
        if not any(isinstance(p, pa.Array) for p in parts):
            return ["{" + "".join(parts) + "}"] * self.n
        return _join("{", *parts, "}").to_pylist()

    def key_at(self, i: int) -> list[int | str]:
        return [k[i].item() for k in self.keys]

    def _check(self, values: list[Any], what: str) -> None:
        for arr, value in zip(self.keys, values, strict=False):
            wanted = str if arr.dtype.kind == "U" else int
            if type(value) is not wanted:
                raise BadRequest(f"{what} is malformed")

    def after(self, values: list[Any]) -> int:
        """Index of the first row sorting strictly after the key ``values``."""
        self._check(values, "token")
        lo, hi = 0, self.n
        for i, (arr, value) in enumerate(zip(self.keys, values, strict=False)):
            segment = arr[lo:hi]
            if i == len(self.keys) - 1:
                return lo + int(np.searchsorted(segment, value, "right"))
            left = int(np.searchsorted(segment, value, "left"))
            right = int(np.searchsorted(segment, value, "right"))
            if left == right:
                return lo + left
            lo, hi = lo + left, lo + right
        return lo

    def first_at_or_after(self, bound: int | None) -> int:
        if bound is None:
            return 0
        self._check([bound], "lower bound")
        return int(np.searchsorted(self.keys[0], bound, "left"))

    def end_at(self, bound: int | None) -> int:
        if bound is None:
            return self.n
        self._check([bound], "upper bound")
        return int(np.searchsorted(self.keys[0], bound, "right"))


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class _World:
    """The world directory; each entity is (re)loaded on the first request after a change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tables: dict[str, tuple[Any, _Table]] = {}
        self._locks = {name: threading.Lock() for name in STREAMS}
        self._meta: tuple[Any, dict[str, Any]] = (None, {})
        self.reloads: Counter[str] = Counter()

    def _state(self, entity: str) -> tuple[Any, Path]:
        meta = self.root / "world.json"
        data = self.root / "api" / f"{entity}.parquet"
        sig = (_signature(meta), _signature(data))
        if sig[0] is None:
            raise WorldUnavailable(f"no world at {self.root}: {meta} is missing; run the generator")
        if sig[1] is None:
            raise WorldUnavailable(f"the world at {self.root} has no {data.relative_to(self.root)}")
        return sig, data

    def table(self, entity: str) -> _Table:
        sig, path = self._state(entity)
        cached = self._tables.get(entity)
        if cached is not None and cached[0] == sig:
            return cached[1]
        with self._locks[entity]:
            cached = self._tables.get(entity)
            if cached is not None and cached[0] == sig:
                return cached[1]
            try:
                table = _Table(STREAMS[entity], pq.read_table(path), path)
            except (OSError, pa.ArrowException) as exc:
                raise WorldUnavailable(f"cannot read {path}: {exc}") from exc
            self._tables[entity] = (sig, table)
            self.reloads[entity] += 1
            log.info("loaded %s: %d rows from %s", entity, table.n, path)
            return table

    def info(self) -> dict[str, Any]:
        """``world.json`` (re-read when it changed) and the row count of each loaded entity."""
        meta = self.root / "world.json"
        sig = _signature(meta)
        if sig != self._meta[0]:
            try:
                self._meta = (sig, json.loads(meta.read_text()) if sig else {})
            except (OSError, ValueError):
                self._meta = (None, {})
        loaded = {name: table.n for name, (_, table) in self._tables.items()}
        return {"dir": str(self.root), "meta": self._meta[1], "loaded_rows": loaded}


# --- configuration ---------------------------------------------------------------------


def _entity_map(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{key} must be an object keyed by entity")
    unknown = sorted(set(value) - set(STREAMS))
    if unknown:
        raise BadRequest(f"{key}: unknown entities {unknown}; known: {sorted(STREAMS)}")
    return value


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check a (partial) configuration; returns it normalized, raises BadRequest."""
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise BadRequest(f"unknown config keys {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    out = dict(config)

    def number(key: str, low: float, high: float = math.inf) -> None:
        if key in out:
            v = out[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
                raise BadRequest(f"{key} must be a number in [{low}, {high}], not {v!r}")

    number("fault_rate", 0, 1)
    number("timeout_s", 0)
    number("slow_ms", 0)
    if "retry_after_s" in out:
        v = out["retry_after_s"]
        if type(v) is not int or v < 0:  # the header counts whole seconds
            raise BadRequest(f"retry_after_s must be a whole number of seconds, not {v!r}")
    if "faults" in out:
        faults = out["faults"]
        if isinstance(faults, str):
            faults = [f.strip() for f in faults.split(",") if f.strip()]
        if not isinstance(faults, list) or not faults:
            raise BadRequest(f"faults must be a non-empty list out of {list(FAULT_KINDS)}")
        faults = [str(f) for f in faults]
        bad = [f for f in faults if f not in FAULT_KINDS]
        if bad:
            raise BadRequest(f"unknown fault kinds {bad}; known: {list(FAULT_KINDS)}")
        out["faults"] = faults
    if out.get("seed") is not None and type(out["seed"]) is not int:
        raise BadRequest(f"seed must be an integer or null, not {out['seed']!r}")
    for entity, spec in _entity_map("schema", out.get("schema", {})).items():
        if not isinstance(spec, dict) or set(spec) - {"add", "drop", "rename"}:
            raise BadRequest(f"schema.{entity} must be an object with add, drop and rename")
        add, drop, rename = spec.get("add", {}), spec.get("drop", []), spec.get("rename", {})
        if not isinstance(add, dict) or not isinstance(rename, dict):
            raise BadRequest(f"schema.{entity}.add and .rename must be objects")
        if not isinstance(drop, list) or not all(isinstance(d, str) for d in drop):
            raise BadRequest(f"schema.{entity}.drop must be a list of field names")
        if not all(isinstance(v, str) for v in rename.values()):
            raise BadRequest(f"schema.{entity}.rename must map field names to field names")
        _check_json(f"schema.{entity}.add", add)
    for entity, rows in _entity_map("bad_rows", out.get("bad_rows", {})).items():
        if not isinstance(rows, list):
            raise BadRequest(f"bad_rows.{entity} must be a list of rows")
        _check_json(f"bad_rows.{entity}", rows)
    for entity, limit in _entity_map("fail_after_rows", out.get("fail_after_rows", {})).items():
        if limit is not None and (type(limit) is not int or limit < 0):
            raise BadRequest(f"fail_after_rows.{entity} must be a row count or null")
    if "zendesk" in out:
        try:
            out["zendesk"] = zendesk.validate_config(out["zendesk"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    if "shopify" in out:
        try:
            out["shopify"] = shopify.validate_config(out["shopify"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    if "hubspot" in out:
        try:
            out["hubspot"] = hubspot.validate_config(out["hubspot"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    for platform in (google_ads, meta_ads):
        name = platform.__name__.rsplit(".", 1)[1]
        if name in out:
            try:
                out[name] = platform.validate_config(out[name])
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
    return out


def _check_json(what: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{what} is not JSON: {exc}") from None


# --- the application behind the HTTP handler -------------------------------------------


class _App:
    def __init__(
        self,
        world_dir: Path,
        marketing_token: str,
        support_token: str,
        config: dict[str, Any],
        shop_token: str = shopify.DEMO_TOKEN,
        hubspot_token: str = hubspot.DEMO_TOKEN,
    ) -> None:
        self.world = _World(world_dir)
        self.tokens = {"marketing": marketing_token, "support": support_token}
        self.zendesk = zendesk.ZendeskApi(world_dir, support_token)
        self.shopify = shopify.ShopifyStore(world_dir, shop_token)
        self.hubspot = hubspot.HubSpotAccount(world_dir, hubspot_token)
        self.google_ads = google_ads.GoogleAdsApi(world_dir)
        self.meta_ads = meta_ads.MetaAdsApi(world_dir)
        self.initial = {**copy.deepcopy(DEFAULT_CONFIG), **validate_config(config)}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.reset()

    # configuration and statistics

    def reset(self) -> None:
        with self._lock:
            self.config = copy.deepcopy(self.initial)
            self._derive()
            self.requests: Counter[str] = Counter()
            self.responses: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.rows_served: Counter[str] = Counter()
            self.zendesk.reset()
            self.shopify.reset()
            self.hubspot.reset()
            self.google_ads.reset()
            self.meta_ads.reset()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        changes = validate_config(changes)
        with self._lock:
            self.config = {**self.config, **copy.deepcopy(changes)}
            self._derive(reseed="seed" in changes)
            return copy.deepcopy(self.config)

    def _derive(self, reseed: bool = True) -> None:
        """Pre-compute what requests need from the configuration, once per change."""
        if reseed:
            self.rng = random.Random(self.config["seed"])
        self.shapes = {e: _Shape.of(spec) for e, spec in self.config["schema"].items()}
        self.bad_rows = {
            e: [json.dumps(r, ensure_ascii=False) for r in rows]
            for e, rows in self.config["bad_rows"].items()
        }

    def warm(self) -> dict[str, int]:
        """Read every entity of the world and build its rows' JSON now rather than on the
        first request: rows per entity read."""
        served = {}
        for entity in STREAMS:
            try:
                table = self.world.table(entity)
            except WorldUnavailable:
                continue  # an entity this world does not serve
            table.rows(self.shapes.get(entity, _Shape()))
            served[entity] = table.n
        return served

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "responses": dict(self.responses),
                "faults": dict(self.faults),
                "rows_served": dict(self.rows_served),
                "reloads": dict(self.world.reloads),
                "world": self.world.info(),
            }

    def count(self, counter: Counter[str], key: str, n: int = 1) -> None:
        with self._lock:
            counter[key] += n

    def pick_fault(self) -> str | None:
        with self._lock:
            rate, faults = self.config["fault_rate"], self.config["faults"]
            if rate <= 0 or self.rng.random() >= rate:
                return None
            return self.rng.choice(faults)

    def row_budget(self, entity: str) -> int | None:
        """Rows the entity may still serve before its simulated crash (None = unlimited)."""
        limit = self.config["fail_after_rows"].get(entity)
        if limit is None:
            return None
        with self._lock:
            return max(0, limit - self.rows_served[entity])


class _Request:
    """A parsed data request: which rows, from where, how many."""

    def __init__(self, stream: _Stream, params: dict[str, str]) -> None:
        self.stream = stream
        self.size = _parse_page_size(params.get("page_size"))
        token_param = {"pages": "page_token", "incremental": "cursor"}.get(stream.style)
        token_value = params.get(token_param) if token_param else None
        if token_value:
            self.token = _decode_token(token_param, token_value, stream)
            return
        self.token = {"e": stream.entity}
        if stream.since and params.get(stream.since):
            self.token["g"] = _BOUND_PARSERS[stream.since](stream.since, params[stream.since])
        if stream.until and params.get(stream.until):
            self.token["u"] = _BOUND_PARSERS[stream.until](stream.until, params[stream.until])
            if self.token["u"] < self.token.get("g", self.token["u"]):
                raise BadRequest(f"{stream.since} is after {stream.until}")


def _build_page(
    table: _Table, rows: list[str], bad: list[str], token: dict[str, Any], size: int
) -> tuple[list[str], dict[str, Any], bool]:
    """Rows of one page, the token of the next and whether this page reaches the end."""
    end = table.end_at(token.get("u"))
    start = table.after(token["k"]) if "k" in token else table.first_at_or_after(token.get("g"))
    stop = max(start, min(start + size, end))
    page = rows[start:stop]
    following = dict(token)
    if stop > start:
        following.pop("g", None)
        following["k"] = table.key_at(stop - 1)
    served_bad = token.get("b", 0)
    if stop >= end and len(page) < size:
        extra = bad[served_bad : served_bad + size - len(page)]
        page = page + extra
        served_bad += len(extra)
        if served_bad:
            following["b"] = served_bad
    return page, following, stop >= end and served_bad >= len(bad)


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: a paging client reuses its connection
    # an answer's headers and body go out in two writes: without TCP_NODELAY the second waits
    # for the client's delayed ACK (~40 ms an answer on a kept-alive connection)
    disable_nagle_algorithm = True
    timeout = 60  # idle keep-alive connections give their thread back after this

    # plumbing

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self,
        status: int,
        body: str | bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        payload = body.encode() if isinstance(body, str) else body
        self.server.app.count(self.server.app.responses, str(status))
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            # the client gave up (e.g. its timeout fired during an injected "timeout")
            self.close_connection = True

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps({"error": message}), headers)

    def _route(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        return parts.path.rstrip("/") or "/", {k: v[-1] for k, v in query.items()}

    def do_GET(self) -> None:
        path, params = self._route()
        if path.startswith("/_demo/"):
            self._control("GET", path)
        elif path in _BY_PATH:
            self._data(_BY_PATH[path], params)
        elif meta_ads.PATH.fullmatch(path):
            self._vendor(self.server.app.meta_ads)
        elif path.startswith(zendesk.PREFIX):
            self._vendor(self.server.app.zendesk)
        else:
            self._error(404, f"no endpoint {path}")

    def do_POST(self) -> None:
        self._write("POST")

    def do_PUT(self) -> None:
        self._write("PUT")

    def do_PATCH(self) -> None:
        self._write("PATCH")

    def do_DELETE(self) -> None:
        self._write("DELETE")

    def _write(self, method: str) -> None:
        path, _ = self._route()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        # OAuth's token endpoint takes a form (RFC 6749) and only hands a token to whoever
        # shows the client secret: nothing a web page of another site could abuse
        refusal = None if path == google_ads.TOKEN_PATH else self._cross_site_refusal()
        if refusal:
            self._error(403, refusal)
        elif path.startswith("/_demo/"):
            self._control(method, path, body)
        elif method == "POST" and shopify.PATH.fullmatch(path):
            self._vendor(self.server.app.shopify, body)
        elif method == "POST" and path == hubspot.PATH:
            self._vendor(self.server.app.hubspot, body)
        elif method == "POST" and (
            path == google_ads.TOKEN_PATH or google_ads.PATH.fullmatch(path)
        ):
            self._vendor(self.server.app.google_ads, body)
        else:
            self._error(405, f"{path} answers GET only")

    def _cross_site_refusal(self) -> str | None:
        """Why a write looks sent by a web page of another site (CSRF), or None.

        A browser sends a write to another origin without asking first (no CORS preflight,
        which this server never grants) only with a form or text/plain body, and tells its
        origin in ``Origin``; so a write is refused when it names another origin or has such
        a body. The demo's own clients send JSON and no Origin."""
        origin = self.headers.get("Origin")
        port = self.server.server_address[1]
        own = {f"http://{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]")}
        if origin is not None and origin not in own:
            return f"cross-origin write refused (Origin {origin})"
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in BROWSER_FORM_TYPES:
            return (
                f"write with Content-Type {content_type} refused (a browser may send it from "
                "any site); send application/json"
            )
        return None

    # the control API

    def _control(self, method: str, path: str, body: bytes = b"") -> None:
        app = self.server.app
        app.count(app.requests, path)
        if not _is_loopback(self.client_address[0]):
            self._error(403, "the demo control API answers loopback clients only")
            return
        if (method, path) == ("GET", "/_demo/config"):
            self._send(200, json.dumps(app.config))
        elif (method, path) == ("GET", "/_demo/stats"):
            self._send(200, json.dumps(app.stats()))
        elif (method, path) == ("POST", "/_demo/reset"):
            app.reset()
            self._send(200, json.dumps(app.config))
        elif (method, path) == ("POST", "/_demo/config"):
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise BadRequest("the body must be a JSON object of config keys")
                self._send(200, json.dumps(app.configure(changes)))
            except ValueError as exc:  # BadRequest and JSON syntax errors
                self._error(400, f"bad config: {exc}")
        else:
            self._error(404 if method == "GET" else 405, f"no control endpoint {method} {path}")

    # the data APIs

    def _data(self, stream: _Stream, params: dict[str, str]) -> None:
        app = self.server.app
        app.count(app.requests, stream.entity)
        source = contract_entity(stream.entity).source
        if self.headers.get("Authorization", "") != f"Bearer {app.tokens[source]}":
            self._error(401, "invalid token")
            return
        try:
            request = _Request(stream, params)
        except BadRequest as exc:
            self._error(400, str(exc))
            return
        config = app.config
        if config["slow_ms"] and app.stopping.wait(config["slow_ms"] / 1000):
            self.close_connection = True  # the server is stopping
            return
        budget = app.row_budget(stream.entity)
        if budget == 0:
            app.count(app.faults, "crash")
            self._error(500, f"injected crash: {stream.entity} failed after its row limit")
            return
        fault = app.pick_fault()
        if fault is not None:
            app.count(app.faults, fault)
            self._fault(fault, config)
            return
        try:
            table = app.world.table(stream.entity)
            body, served = self._body(stream, table, request, budget)
        except WorldUnavailable as exc:
            self._error(503, str(exc))
            return
        except BadRequest as exc:
            self._error(400, str(exc))
            return
        app.count(app.rows_served, stream.entity, served)
        self._send(200, body)

    def _vendor(
        self,
        api: zendesk.ZendeskApi
        | shopify.ShopifyStore
        | hubspot.HubSpotAccount
        | google_ads.GoogleAdsApi
        | meta_ads.MetaAdsApi,
        body: bytes | None = None,
    ) -> None:
        """A vendor dialect's request: the module answers it, in its own shapes and error
        bodies; the server's delay and fault injection apply as to the generic endpoints."""
        app = self.server.app
        resource = urlsplit(self.path).path.removesuffix(".json")
        app.count(app.requests, f"{api.name} {resource}")
        config = app.config
        if config["slow_ms"] and app.stopping.wait(config["slow_ms"] / 1000):
            self.close_connection = True  # the server is stopping
            return
        fault = app.pick_fault()
        if fault is not None:
            app.count(app.faults, fault)
            if fault == "timeout":
                app.stopping.wait(config["timeout_s"])
                fault = "503"
        if body is None:  # a GET
            answer = api.answer(self.path, self.headers, config[api.name], fault)
        else:
            answer = api.answer(self.path, self.headers, config[api.name], fault, body)
        app.count(app.rows_served, f"{api.name} {resource}", answer.rows)
        self._send(answer.status, answer.body, answer.headers, answer.content_type)

    def _fault(self, fault: str, config: dict[str, Any]) -> None:
        if fault == "429":
            headers = {"Retry-After": str(config["retry_after_s"])}
            self._error(429, "rate limit exceeded (injected)", headers)
        elif fault == "timeout":
            self.server.app.stopping.wait(config["timeout_s"])
            self._error(503, "upstream timed out (injected)")
        else:
            phrase = HTTPStatus(int(fault)).phrase
            self._error(int(fault), f"{phrase} (injected)")

    def _body(
        self, stream: _Stream, table: _Table, request: _Request, budget: int | None
    ) -> tuple[str, int]:
        app = self.server.app
        rows = table.rows(app.shapes.get(stream.entity, _Shape()))
        bad = app.bad_rows.get(stream.entity, [])
        if stream.style == "all":
            page = rows + bad
            page = page if budget is None else page[:budget]
            return f'{{"{stream.rows_key}":[{",".join(page)}]}}', len(page)
        size = request.size if budget is None else min(request.size, budget)
        page, following, done = _build_page(table, rows, bad, request.token, size)
        data = ",".join(page)
        if stream.style == "pages":
            token = "null" if done else json.dumps(_encode_token(following))
            return f'{{"{stream.rows_key}":[{data}],"next_page_token":{token}}}', len(page)
        cursor = json.dumps(_encode_token(following))
        end = "true" if done else "false"
        body = f'{{"{stream.rows_key}":[{data}],"after_cursor":{cursor},"end_of_stream":{end}}}'
        return body, len(page)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # stop() must not wait for a handler sleeping in a fault
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: _App) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on keep-alive clients: a stopped server must not answer on old sockets."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("%s hung up", client_address[0])  # clients time out by design
        else:
            log.exception("demo server: error while answering %s", client_address[0])


# --- public API -----------------------------------------------------------------------


class DemoServer:
    """The demo marketing + support APIs over a world directory, in a background thread.

    >>> with DemoServer(world_dir, config={"fault_rate": 0.1}) as server:
    ...     loader.run(base_url=server.url)
    """

    def __init__(
        self,
        world_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        marketing_token: str | None = None,
        support_token: str | None = None,
        config: dict[str, Any] | None = None,
        shop_token: str | None = None,
        hubspot_token: str | None = None,
    ) -> None:
        if shop_token is None:  # the Shopify dialect's: the loaders' own, else the demo's
            shop_token = get_settings().shop_api_token or shopify.DEMO_TOKEN
        if hubspot_token is None:  # the HubSpot dialect's: the loaders' own, else the demo's
            hubspot_token = get_settings().hubspot_token or hubspot.DEMO_TOKEN
        if marketing_token is None or support_token is None:
            # the tokens the loaders of this environment send, else the demo's own
            settings = get_settings()
            marketing_token = (
                marketing_token
                or settings.marketing_api_token
                or DEMO_TOKENS["OPS_MARKETING_API_TOKEN"]
            )
            support_token = (
                support_token or settings.support_api_token or DEMO_TOKENS["OPS_SUPPORT_API_TOKEN"]
            )
        self.world_dir = Path(world_dir)
        self.host, self.port = host, port
        self._app = _App(
            self.world_dir,
            marketing_token,
            support_token,
            config or {},
            shop_token,
            hubspot_token,
        )
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def warm(self) -> dict[str, int]:
        """Have the whole world in memory before the first request, as a source system that
        is already up has its data (a cold entity costs its first request a few seconds per
        million rows): rows per entity."""
        return self._app.warm()

    def start(self) -> DemoServer:
        if self._httpd is not None:
            raise RuntimeError("the demo server is already running")
        self._app.stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self._app)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"demo-server-{self._httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._app.stopping.set()  # wakes handlers delaying a response
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the demo server is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def config(self) -> dict[str, Any]:
        return copy.deepcopy(self._app.config)

    def configure(self, **config: Any) -> None:
        """Change the fault-injection configuration (same keys as ``POST /_demo/config``)."""
        try:
            self._app.configure(config)
        except BadRequest as exc:
            raise ValueError(str(exc)) from None

    def reset(self) -> None:
        """Back to the start-up configuration, with zeroed statistics."""
        self._app.reset()

    def stats(self) -> dict[str, Any]:
        return self._app.stats()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = get_settings()
    p = argparse.ArgumentParser(
        prog="python -m ops_demo.server",
        description="Serve the demo world's marketing and support APIs until SIGTERM/SIGINT. "
        "Tokens come from OPS_MARKETING_API_TOKEN and OPS_SUPPORT_API_TOKEN "
        "(the demo's own tokens where those are not set).",
    )
    p.add_argument("--dir", type=Path, default=settings.demo_dir, help="world directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=settings.demo_port, help="0 = any free port")
    p.add_argument("--config", help="fault-injection config: a JSON file or JSON text")
    p.add_argument("--fault-rate", type=float, help="share of data requests that fail")
    p.add_argument("--faults", help=f"comma-separated kinds out of {','.join(FAULT_KINDS)}")
    p.add_argument("--retry-after-s", type=int, help="Retry-After seconds on a 429")
    p.add_argument("--timeout-s", type=float, help="how long a 'timeout' fault hangs")
    p.add_argument("--slow-ms", type=float, help="delay added to every data response")
    p.add_argument("--seed", type=int, help="seed of the fault RNG")
    p.add_argument(
        "--warm",
        action="store_true",
        help="read the whole world before listening, instead of each entity on its first request",
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG logs one line per request")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    with_demo_tokens()
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    config: dict[str, Any] = {}
    if args.config:
        text = Path(args.config).read_text() if os.path.exists(args.config) else args.config
        config = json.loads(text)
    for key in ("fault_rate", "faults", "retry_after_s", "timeout_s", "slow_ms", "seed"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    try:
        server = DemoServer(args.dir, host=args.host, port=args.port, config=config)
    except (BadRequest, ValueError) as exc:
        print(f"demo server: bad configuration: {exc}", file=sys.stderr)
        return 2
    if args.warm:
        rows = server.warm()
        log.info("warm: %d entities, %d rows in memory", len(rows), sum(rows.values()))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"demo server: port {args.port} on {args.host} is taken; stop what listens there, "
            "or choose a free port (--port, OPS_DEMO_PORT)",
            file=sys.stderr,
        )
        return 2
    print(f"{LISTENING} {server.url} (world: {args.dir})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
