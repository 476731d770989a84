"""A gallery of malformed inputs at the edge: landing sheets, API pages and the shop database.

Every input ends in exactly one of three outcomes, and never in an unhandled exception:

- ``loaded``: the rows loaded as the contract reads them;
- ``quarantined``: the bad row set aside with a reason naming source and entity, the file,
  URL or shop table, the field, the row (a sheet's line, else its key) and the value;
- ``permanent``: the load stopped with an error classified permanent (no retry: the same
  input fails the same way) naming the same, after exactly the requests it needed.

A few representative failures also run through the ingest task's body, where they fail at
once without Airflow's retries and leave raw and the published warehouse byte-identical.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ops_warehouse.errors import is_permanent
from ops_warehouse.pipeline.contracts import SHEET_MAX_BYTES, entity
from ops_warehouse.pipeline.shop_schema import metadata as shop_metadata
from ops_warehouse.pipeline.sources import landing, marketing, sales, support
from ops_warehouse.pipeline.sources.arrow_rows import Batch
from ops_warehouse.pipeline.sources.window import Window
from tests.conftest import make_settings

END = datetime(2026, 11, 23, tzinfo=UTC)
WINDOW = Window.of(None, END)

BUDGET_HEADER = b"month,channel,planned_spend,currency\n"
TARGETS_HEADER = b"month,kpi,target\n"
GOOD_BUDGET = b"2026-11,google_ads,100.00,USD\n"
GOOD_TARGET = b"2026-11,net_revenue,50000\n"


class PageServer:
    """A local HTTP server that answers each path with the answers it is given, in turn (the
    last one again once they run out), and counts the requests per path."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, str, bytes]]] = {}
        self.requests: Counter[str] = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's API)
                path = self.path.split("?", 1)[0]
                server.requests[path] += 1
                answers = server.answers.get(path) or [(404, "application/json", b"{}")]
                status, kind, body = answers[min(server.requests[path], len(answers)) - 1]
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def serve(self, path: str, *bodies: Any, status: int = 200, kind: str = "") -> None:
        """Answer ``path`` with each body in turn: bytes as they are, anything else as JSON."""
        self.answers[path] = [
            (
                status,
                kind or ("application/json" if not isinstance(b, bytes) else "text/plain"),
                b if isinstance(b, bytes) else json.dumps(b).encode(),
            )
            for b in bodies
        ]

    def serve_empty_marketing(self) -> None:
        for name in ("ad_performance", "campaigns", "signups"):
            self.serve(f"/marketing/v1/{name}", {"data": [], "next_page_token": None})

    def reset(self) -> None:
        self.answers.clear()
        self.requests.clear()

    def __enter__(self) -> PageServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def pages():
    with PageServer() as server:
        yield server


@pytest.fixture
def edge_settings(tmp_path, pages):
    pages.reset()
    (tmp_path / "world" / "landing").mkdir(parents=True)
    return make_settings(
        tmp_path / "home",
        tmp_path / "world",
        pages.url,
        http_max_attempts=3,
        http_backoff_max_s=0.05,
        http_timeout_s=2.0,
        page_size=2,
    )


def outcome(read: Callable[[], Iterable[Batch]]) -> tuple[str, Any]:
    """Run a reader to its end: ("loaded", rows), ("quarantined", reasons) or ("permanent",
    message). Any other exception fails the test: nothing may escape unclassified."""
    try:
        batches = list(read())
    except Exception as exc:
        assert is_permanent(exc), f"{type(exc).__name__} is not classified permanent: {exc}"
        return "permanent", str(exc)
    reasons = [r for b in batches for r in b.quarantined["reason"].to_pylist()]
    if reasons:
        return "quarantined", reasons
    return "loaded", [row for b in batches for row in b.table.to_pylist()]


def assert_names(text: str, *parts: str) -> None:
    missing = [p for p in parts if p not in text]
    assert not missing, f"{missing} not named in: {text}"


# --- landing sheets ----------------------------------------------------------------------


def budget(*rows: bytes, header: bytes = BUDGET_HEADER) -> bytes:
    return header + b"".join(rows)


def targets(*rows: bytes) -> bytes:
    return TARGETS_HEADER + b"".join(rows)


# file content with a good row (line 2) and a bad one (line 3) → (field, value as shown)
QUARANTINED_SHEETS = {
    "month as free text": (
        budget(GOOD_BUDGET, b"Nov 2026,google_ads,100.00,USD\n"),
        ("month", "'Nov 2026'"),
    ),
    "month 13": (budget(GOOD_BUDGET, b"2026-13,google_ads,100.00,USD\n"), ("month", "'2026-13'")),
    "month with a space": (budget(GOOD_BUDGET, b" 2026-11,meta_ads,1.00,USD\n"), ("month", "' ")),
    "spend overflowing": (
        budget(GOOD_BUDGET, b"2026-12,google_ads,1e400,USD\n"),
        ("planned_spend", "'1e400'"),
    ),
    "spend with a decimal comma": (
        budget(GOOD_BUDGET, b'2026-12,google_ads,"12,30",USD\n'),
        ("planned_spend", "'12,30'"),
    ),
    "currency lower case": (
        budget(GOOD_BUDGET, b"2026-12,meta_ads,1.00,usd\n"),
        ("currency", "'usd'"),
    ),
    "currency unknown": (
        budget(GOOD_BUDGET, b"2026-12,meta_ads,1.00,XYZ\n"),
        ("currency", "'XYZ'"),
    ),
    "target nan": (targets(GOOD_TARGET, b"2026-11,csat,nan\n"), ("target", "'nan'")),
    "target inf": (targets(GOOD_TARGET, b"2026-11,csat,inf\n"), ("target", "'inf'")),
    "target -inf": (targets(GOOD_TARGET, b"2026-11,csat,-inf\n"), ("target", "'-inf'")),
    "target 1e400": (targets(GOOD_TARGET, b"2026-11,csat,1e400\n"), ("target", "'1e400'")),
    "target negative": (targets(GOOD_TARGET, b"2026-11,csat,-0.5\n"), ("target", "'-0.5'")),
    "NUL in a text cell": (targets(GOOD_TARGET, b"2026-11,cs\x00at,0.9\n"), ("kpi", "'cs\\x00at'")),
}


@pytest.mark.parametrize("case", list(QUARANTINED_SHEETS))
def test_a_bad_sheet_row_is_quarantined_naming_file_line_field_and_value(edge_settings, case):
    content, (field, value) = QUARANTINED_SHEETS[case]
    kind = "budget" if content.startswith(BUDGET_HEADER) else "kpi_targets"
    name = f"{kind}_2026-11-01.csv"
    (edge_settings.landing_dir / name).write_bytes(content)
    result, reasons = outcome(
        lambda: landing.read_sheets(edge_settings.landing_dir, entity(kind), WINDOW)
    )
    assert result == "quarantined" and len(reasons) == 1, (result, reasons)
    assert_names(
        reasons[0], f"marketing.{kind}", f"file {name}", f"field {field!r}", "line 3", value
    )
    # the good row beside it loads
    loaded = list(landing.read_sheets(edge_settings.landing_dir, entity(kind), WINDOW))
    assert sum(b.table.num_rows for b in loaded) == 1


def _symlink(folder: Path) -> str:
    secret = folder.parent / "secret.txt"
    secret.write_text("root:x:0:0:the first line of a file outside the landing folder\n")
    os.symlink(secret, folder / "budget_2026-11-01.csv")
    return "budget_2026-11-01.csv"


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "budget_2026-11-01.csv")  # opening it would block a naive reader
    return "budget_2026-11-01.csv"


def _folder(folder: Path) -> str:
    (folder / "budget_2026-11-01.csv").mkdir()
    return "budget_2026-11-01.csv"


def _huge(folder: Path) -> str:
    with (folder / "budget_2026-11-01.csv").open("wb") as handle:
        handle.write(BUDGET_HEADER)
        handle.truncate(101 * 2**20)  # 101 MB (sparse): refused before a byte is read
    return "budget_2026-11-01.csv"


def _file(name: str, content: bytes) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        (folder / name).write_bytes(content)
        return name

    return make


# file maker → what the error must name besides source, entity and file
PERMANENT_SHEETS: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "latin-1": (
        _file("budget_2026-11-01.csv", budget("2026-11,m\xe9ta_ads,1.00,USD\n".encode("latin-1"))),
        ("not UTF-8", "line 2", "CSV UTF-8"),
    ),
    "UTF-16": (
        _file("budget_2026-11-01.csv", "month,channel\n".encode("utf-16")),
        ("UTF-16",),
    ),
    "a 200 kB field": (
        _file("budget_2026-11-01.csv", budget(b"2026-11,google_ads,1.00," + b"U" * 200_000)),
        ("line 2", "longer than"),
    ),
    "a 200 kB quoted field over many lines": (
        _file(
            "budget_2026-11-01.csv",
            budget(b'2026-11,google_ads,1.00,"' + b"U\n" * 100_000),
        ),
        ("line", "not well-formed CSV"),
    ),
    "bad quoting": (
        _file("budget_2026-11-01.csv", budget(b'2026-11,"google_ads"x,1.00,USD\n')),
        ("line 2", "not well-formed CSV"),
    ),
    "a column named <script>": (
        _file(
            "budget_2026-11-01.csv",
            budget(b"2026-11,google_ads,1.00,USD,x\n", header=BUDGET_HEADER[:-1] + b",<script>\n"),
        ),
        ("'<script>'", "not a plain lower-case name"),
    ),
    "a column named =1+1": (
        _file("kpi_targets_2026-11-01.csv", b"month,kpi,target,=1+1\n2026-11,csat,0.9,2\n"),
        ("'=1+1'",),
    ),
    "a column named _file_name": (
        _file("kpi_targets_2026-11-01.csv", b"month,kpi,target,_file_name\n2026-11,csat,1,x\n"),
        ("'_file_name'",),
    ),
    "a missing column": (
        _file("budget_2026-11-01.csv", b"month,channel,currency\n2026-11,google_ads,USD\n"),
        ("'planned_spend'",),
    ),
    "a column twice": (
        _file("kpi_targets_2026-11-01.csv", b"month,kpi,target,kpi\n2026-11,csat,1,aov\n"),
        ("'kpi'", "more than once"),
    ),
    "an empty file": (_file("budget_2026-11-01.csv", b""), ("no header row",)),
    "a name without a date": (_file("budget_final.csv", budget(GOOD_BUDGET)), ("<YYYY-MM-DD>",)),
    "a name with an impossible date": (
        _file("budget_2026-02-30.csv", budget(GOOD_BUDGET)),
        ("<YYYY-MM-DD>",),
    ),
    "a symbolic link": (_symlink, ("symbolic link", "nothing of it was")),
    "a named pipe": (_fifo, ("not a regular file",)),
    "a folder": (_folder, ("not a regular file",)),
    "a 101 MB sheet": (_huge, (f"{101 * 2**20:,} bytes", f"{SHEET_MAX_BYTES:,}")),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", list(PERMANENT_SHEETS))
def test_a_malformed_sheet_stops_the_load_naming_it(edge_settings, case):
    make, named = PERMANENT_SHEETS[case]
    name = make(edge_settings.landing_dir)
    kind = "budget" if name.startswith("budget") else "kpi_targets"
    result, message = outcome(
        lambda: landing.read_sheets(edge_settings.landing_dir, entity(kind), WINDOW)
    )
    assert result == "permanent", (result, message)
    assert_names(message, f"marketing.{kind}", name, *named)
    assert "the first line of a file outside" not in message


LOADED_SHEETS = {
    "Excel's CSV UTF-8 (a byte-order mark, CRLF)": (
        b"\xef\xbb\xbf" + budget(GOOD_BUDGET).replace(b"\n", b"\r\n"),
        "budget",
        {"month": "2026-11", "channel": "google_ads", "currency": "USD"},
    ),
    "a formula kept as text, never evaluated": (
        targets(b'2026-11,"=HYPERLINK(""http://x"")",1\n'),
        "kpi_targets",
        {"month": "2026-11", "kpi": '=HYPERLINK("http://x")', "target": 1.0},
    ),
    "blank rows and an unnamed empty trailing column": (
        b"month,kpi,target,\n\n2026-11,aov,80.5,\n,,,\n",
        "kpi_targets",
        {"month": "2026-11", "kpi": "aov", "target": 80.5},
    ),
    "UTF-8 text beyond ASCII": (
        b"month,kpi,target,note\n2026-11,aov,80.5,\xe5\x8f\x8c\xe5\x8d\x81\xe4\xb8\x80\n",
        "kpi_targets",
        {"month": "2026-11", "kpi": "aov", "note": "双十一"},
    ),
}


@pytest.mark.parametrize("case", list(LOADED_SHEETS))
def test_an_odd_but_valid_sheet_loads_as_written(edge_settings, case):
    content, kind, expected = LOADED_SHEETS[case]
    (edge_settings.landing_dir / f"{kind}_2026-11-01.csv").write_bytes(content)
    result, rows = outcome(
        lambda: landing.read_sheets(edge_settings.landing_dir, entity(kind), WINDOW)
    )
    assert result == "loaded" and len(rows) == 1, (result, rows)
    assert {k: rows[0][k] for k in expected} == expected
    assert rows[0]["_file_name"] == f"{kind}_2026-11-01.csv"


def test_lines_repeating_a_key_with_other_content_are_all_quarantined(edge_settings):
    content = budget(
        GOOD_BUDGET,
        b"2026-12,meta_ads,1.00,USD\n",
        b"2026-12,meta_ads,2.00,USD\n",
        b"2026-12,meta_ads,1.00,USD\n",
        b"2026-12,google_ads,1.00,USD,surplus\n",
    )
    (edge_settings.landing_dir / "budget_2026-11-01.csv").write_bytes(content)
    result, reasons = outcome(
        lambda: landing.read_sheets(edge_settings.landing_dir, entity("budget"), WINDOW)
    )
    assert result == "quarantined" and len(reasons) == 4
    for line in (3, 4, 5):
        assert any(f"line {line}" in r and "lines 3 and 4" in r for r in reasons), line
    assert any("line 6" in r and "5 cells where the header has 4" in r for r in reasons)


def test_a_long_sheet_streams_in_several_batches(edge_settings, monkeypatch):
    monkeypatch.setattr(landing, "SHEET_BATCH_ROWS", 100)
    rows = [f"2026-{m:02d},kpi_{i},{i}\n".encode() for m in range(1, 13) for i in range(50)]
    (edge_settings.landing_dir / "kpi_targets_2026-11-01.csv").write_bytes(targets(*rows))
    batches = list(landing.read_sheets(edge_settings.landing_dir, entity("kpi_targets"), WINDOW))
    assert [b.table.num_rows for b in batches] == [100] * 6
    assert sum(b.quarantined.num_rows for b in batches) == 0


# --- API pages -----------------------------------------------------------------------------

TICKETS = "/support/v1/incremental/tickets"
CAMPAIGNS = "/marketing/v1/campaigns"


def ticket(ticket_id: int, **changes: Any) -> dict[str, Any]:
    row = {
        "ticket_id": ticket_id,
        "requester_email": "a@example.com",
        "subject": "where is my parcel",
        "category": "delivery",
        "channel": "email",
        "priority": "normal",
        "status": "open",
        "assignee_id": None,
        "created_at": "2026-11-21T08:00:00Z",
        "updated_at": "2026-11-21T08:00:00Z",
    }
    return {**row, **changes}


def campaign(campaign_id: str, **changes: Any) -> dict[str, Any]:
    row = {
        "campaign_id": campaign_id,
        "campaign_name": "Winter",
        "channel": "google_ads",
        "objective": "acquisition",
        "status": "active",
        "start_date": "2026-11-01",
        "end_date": None,
        "daily_budget": "10.00",
        "currency": "USD",
        "updated_at": "2026-11-20T10:00:00Z",
    }
    return {**row, **changes}


def last_page(*rows: dict) -> dict:
    return {"tickets": list(rows), "after_cursor": "c-end", "end_of_stream": True}


def read_tickets(settings) -> Callable[[], Iterable[Batch]]:
    api = support.client(settings)
    return lambda: support.read_incremental(api, entity("tickets"), {}, WINDOW, settings)


def read_campaigns(settings) -> Callable[[], Iterable[Batch]]:
    api = marketing.client(settings)
    return lambda: marketing.read_campaigns(api, entity("campaigns"), {}, WINDOW, settings)


# path → (answers, requests expected, what the error names besides source, entity and URL)
PERMANENT_PAGES: dict[str, tuple[str, list[tuple[Any, int, str]], int, tuple[str, ...]]] = {
    "an HTML page": (
        TICKETS,
        [(b"<!doctype html><title>Maintenance</title>", 200, "text/html")],
        1,
        ("not JSON", "text/html", "<!doctype html>"),
    ),
    "truncated JSON": (TICKETS, [(b'{"tickets": [{"ticket_id": 1', 200, "")], 1, ("not JSON",)),
    "invalid UTF-8 in JSON": (TICKETS, [(b'{"tickets": ["\xff"]}', 200, "")], 1, ("not JSON",)),
    "JSON nested too deep": (TICKETS, [(b"[" * 100_000 + b"]" * 100_000, 200, "")], 1, ()),
    "a JSON list, not an object": (TICKETS, [([ticket(1)], 200, "")], 1, ("a list",)),
    "no entity key": (
        TICKETS,
        [({"data": [ticket(1)], "end_of_stream": True}, 200, "")],
        1,
        ("'tickets'", "'data'"),
    ),
    "rows not a list": (
        TICKETS,
        [({"tickets": {"1": ticket(1)}, "end_of_stream": True}, 200, "")],
        1,
        ("an object, not a list",),
    ),
    "a row that is not an object": (
        TICKETS,
        [({"tickets": [ticket(1), 7], "end_of_stream": True}, 200, "")],
        1,
        ("row 2", "a number"),
    ),
    "no end_of_stream": (
        TICKETS,
        [({"tickets": [ticket(1)], "after_cursor": "c1"}, 200, "")],
        1,
        ("end_of_stream is missing",),
    ),
    "end_of_stream as text": (
        TICKETS,
        [({"tickets": [], "after_cursor": "c1", "end_of_stream": "no"}, 200, "")],
        1,
        ("end_of_stream is 'no'",),
    ),
    "not the last page, no after_cursor": (
        TICKETS,
        [({"tickets": [ticket(1)], "end_of_stream": False}, 200, "")],
        1,
        ("no after_cursor",),
    ),
    "an after_cursor served twice": (
        TICKETS,
        [({"tickets": [ticket(1)], "after_cursor": "c1", "end_of_stream": False}, 200, "")],
        2,
        ("'c1' was served before",),
    ),
    "a field named <b>": (
        TICKETS,
        [(last_page(ticket(1), {**ticket(2), "<b>": "x"}), 200, "")],
        1,
        ("'<b>'", "not a plain lower-case name"),
    ),
    "a field named createdAt": (
        TICKETS,
        [(last_page({**ticket(1), "createdAt": "x"}), 200, "")],
        1,
        ("'createdAt'",),
    ),
    "a required field renamed": (
        TICKETS,
        [(last_page({k if k != "status" else "state": v for k, v in ticket(1).items()}), 200, "")],
        1,
        ("'status'", "'state'"),
    ),
    "404 (a wrong base URL)": (TICKETS, [({"error": "no"}, 404, "")], 1, ("404",)),
    "a next_page_token served twice": (
        CAMPAIGNS,
        [({"data": [campaign("c1")], "next_page_token": "t1"}, 200, "")],
        2,
        ("next_page_token", "'t1'", "served before"),
    ),
    "a next_page_token that is a number": (
        CAMPAIGNS,
        [({"data": [campaign("c1")], "next_page_token": 2}, 200, "")],
        1,
        ("next_page_token", "not a string"),
    ),
}


@pytest.mark.parametrize("case", list(PERMANENT_PAGES))
def test_a_malformed_page_stops_the_load_naming_url_without_retry(edge_settings, pages, case):
    path, answers, requests, named = PERMANENT_PAGES[case]
    pages.answers[path] = [
        (status, kind or "application/json", b if isinstance(b, bytes) else json.dumps(b).encode())
        for b, status, kind in answers
    ]
    read = read_tickets if path == TICKETS else read_campaigns
    what = "support.tickets" if path == TICKETS else "marketing.campaigns"
    result, message = outcome(read(edge_settings))
    assert result == "permanent", (result, message)
    assert_names(message, what, f"{pages.url}{path}", *named)
    assert pages.requests[path] == requests  # no retry of a permanent error


# row changes → (field, value as the reason shows it)
QUARANTINED_TICKETS: dict[str, tuple[dict[str, Any], str, str]] = {
    "a priority outside the contract": ({"priority": "critical"}, "priority", "'critical'"),
    "a timestamp that is not one": ({"created_at": "yesterday"}, "created_at", "'yesterday'"),
    "a timestamp in the year 9999": (
        {"created_at": "9999-01-01T00:00:00Z"},
        "created_at",
        "'9999-01-01T00:00:00Z'",
    ),
    "an id that is a fraction": ({"assignee_id": 1.5}, "assignee_id", "1.5"),
    "an id that is NaN": ({"assignee_id": float("nan")}, "assignee_id", "nan"),
    "an id beyond 64 bits": ({"assignee_id": 10**30}, "assignee_id", str(10**30)),
    # a subject is free text: the reason names the field and withholds the value
    "text that is an object": ({"subject": {"a": 1}}, "subject", "withheld (free text)"),
    "a NUL in the subject": ({"subject": "a\x00b"}, "subject", "withheld (free text)"),
}


@pytest.mark.parametrize("case", list(QUARANTINED_TICKETS))
def test_a_bad_api_row_is_quarantined_naming_url_row_field_and_value(edge_settings, pages, case):
    changes, field, value = QUARANTINED_TICKETS[case]
    first = {"tickets": [ticket(1)], "after_cursor": "c1", "end_of_stream": False}
    pages.serve(TICKETS, first, last_page(ticket(2, **changes)))
    result, reasons = outcome(read_tickets(edge_settings))
    assert result == "quarantined" and len(reasons) == 1, (result, reasons)
    # the endpoint without its query: the same row keeps the same reason on any page
    assert_names(
        reasons[0],
        "support.tickets",
        f"GET {pages.url}{TICKETS},",
        "row ticket_id 2",
        f"{field!r}",
        value,
    )
    assert pages.requests[TICKETS] == 2


def test_non_finite_json_numbers_are_quarantined(edge_settings, pages):
    body = (
        b'{"data": ['
        + json.dumps(campaign("c1")).encode()
        + b", "
        + json.dumps(campaign("c2")).replace('"10.00"', "NaN").encode()
        + b", "
        + json.dumps(campaign("c3")).replace('"10.00"', "Infinity").encode()
        + b'], "next_page_token": null}'
    )
    pages.serve(CAMPAIGNS, body)
    result, reasons = outcome(read_campaigns(edge_settings))
    assert result == "quarantined" and len(reasons) == 2
    assert any("row campaign_id 'c2'" in r and "'daily_budget'" in r for r in reasons)
    assert any("row campaign_id 'c3'" in r and "inf" in r for r in reasons)


def test_a_server_error_is_transient_and_retried(edge_settings, pages):
    pages.serve(TICKETS, {"error": "busy"}, status=503)
    with pytest.raises(Exception) as err:
        list(read_tickets(edge_settings)())
    assert not is_permanent(err.value)
    assert "503" in str(err.value) and "support.tickets" in str(err.value)
    assert pages.requests[TICKETS] == edge_settings.http_max_attempts


# --- the shop database ---------------------------------------------------------------------


def shop(tmp_path: Path, table: str, rows: list[dict[str, Any]], drop: str = "") -> sa.Engine:
    """A shop database with every contract table, ``rows`` in ``table``."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.sqlite'}")
    shop_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(shop_metadata.tables[table].insert(), rows)
    if drop:
        with sqlite3.connect(tmp_path / "shop.sqlite") as con:
            con.execute(f"drop table {drop}")
    return engine


def fx(day: int, currency: str = "EUR", rate: float = 1.1) -> dict[str, Any]:
    return {"rate_date": date(2026, 11, day), "currency": currency, "rate_to_usd": rate}


def read_shop(engine: sa.Engine, name: str) -> Callable[[], Iterable[Batch]]:
    def read() -> Iterable[Batch]:
        with engine.connect() as conn:
            return list(sales.read_table(conn, entity(name), {}, WINDOW))

    return read


def test_shop_rows_that_break_the_contract_are_quarantined(tmp_path):
    engine = shop(
        tmp_path,
        "fx_rates",
        [fx(1), fx(2, rate=float("inf")), fx(3, currency="usd"), fx(4, rate=-1.0)],
    )
    result, reasons = outcome(read_shop(engine, "fx_rates"))
    assert result == "quarantined" and len(reasons) == 3
    for day, field, value in ((2, "rate_to_usd", "inf"), (3, "currency", "'usd'")):
        assert any(
            f"row rate_date '2026-11-0{day}'" in r and f"{field!r}" in r and value in r
            for r in reasons
        ), (day, reasons)
    for reason in reasons:
        assert_names(reason, "sales.fx_rates", "shop table fx_rates")


def test_text_in_a_shop_money_column_is_quarantined(tmp_path):
    engine = shop(tmp_path, "fx_rates", [fx(1)])
    with sqlite3.connect(tmp_path / "shop.sqlite") as con:
        con.execute("insert into fx_rates values ('2026-11-02', 'EUR', 'n/a')")
    result, reasons = outcome(read_shop(engine, "fx_rates"))
    assert result == "quarantined" and len(reasons) == 1
    assert_names(reasons[0], "sales.fx_rates", "'rate_to_usd'", "'n/a'", "rate_date")


@pytest.mark.parametrize(
    "change,named",
    [
        ("drop table fx_rates", ("sales.fx_rates", "no table 'fx_rates'")),
        (
            'alter table fx_rates add column "Rate (EUR)" real',
            ("sales.fx_rates", "shop table fx_rates", "'Rate (EUR)'"),
        ),
    ],
    ids=["a missing table", "a column named 'Rate (EUR)'"],
)
def test_a_shop_table_the_warehouse_cannot_keep_stops_the_load(tmp_path, change, named):
    engine = shop(tmp_path, "fx_rates", [fx(1)])
    with sqlite3.connect(tmp_path / "shop.sqlite") as con:
        con.execute(change)
    result, message = outcome(read_shop(engine, "fx_rates"))
    assert result == "permanent", (result, message)
    assert_names(message, *named)


# --- through the ingest task: no retry, raw and the published warehouse unchanged -----------


def _published_hash(settings) -> tuple[Path, str]:
    import duckdb

    from ops_warehouse.pipeline import audit
    from ops_warehouse.warehouse import publish

    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("create schema if not exists marts")
        con.execute("create or replace table marts.kpi_daily as select 1 as placeholder")
    path = Path(publish.publish(settings, audit.RunInfo("transform", "before_the_bad_input")))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _break(settings, pages, case: str) -> str:
    """One representative bad input per kind; returns the source it breaks."""
    if case == "latin-1 sheet":
        (settings.landing_dir / "budget_2026-11-20.csv").write_bytes(
            budget("2026-11,m\xe9ta_ads,1.00,USD\n".encode("latin-1"))
        )
        return "marketing"
    if case == "HTML campaigns page":
        pages.serve(CAMPAIGNS, b"<html>Bad gateway</html>", kind="text/html")
        return "marketing"
    if case == "month as free text":  # one bad row of two: above the 1 % threshold
        (settings.landing_dir / "budget_2026-11-20.csv").write_bytes(
            budget(GOOD_BUDGET, b"Nov 2026,google_ads,100.00,USD\n")
        )
        return "marketing"
    if case == "tickets page without end_of_stream":
        pages.serve(TICKETS, {"tickets": [ticket(1)], "after_cursor": "c1"})
        return "support"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case,named",
    [
        ("latin-1 sheet", ("budget_2026-11-20.csv", "line 2", "not UTF-8")),
        ("HTML campaigns page", ("marketing.campaigns", "/marketing/v1/campaigns", "not JSON")),
        (
            "month as free text",
            ("OPS_QUARANTINE_THRESHOLD", "budget_2026-11-20.csv", "line 3", "'Nov 2026'"),
        ),
        ("tickets page without end_of_stream", (TICKETS, "end_of_stream is missing")),
    ],
)
def test_through_the_ingest_task_a_bad_input_fails_at_once_and_changes_nothing(
    edge_settings, pages, monkeypatch, case, named
):
    from airflow.sdk.exceptions import AirflowFailException

    from ops_warehouse import settings as settings_module
    from ops_warehouse.airflow import tasks
    from ops_warehouse.warehouse.queries import query
    from tests.helpers import raw_snapshot

    monkeypatch.setattr(settings_module, "get_settings", lambda: edge_settings)
    pages.serve_empty_marketing()
    pages.serve(TICKETS, last_page())
    for name in ("ticket_events", "time_entries"):
        pages.serve(
            f"/support/v1/incremental/{name}",
            {name: [], "after_cursor": "c", "end_of_stream": True},
        )
    pages.serve("/support/v1/agents", {"agents": []})
    (edge_settings.landing_dir / "budget_2026-11-01.csv").write_bytes(budget(GOOD_BUDGET))
    (edge_settings.landing_dir / "kpi_targets_2026-11-01.csv").write_bytes(targets(GOOD_TARGET))
    for source in ("marketing", "support"):
        tasks.run_load(source, END - timedelta(days=1), END, f"good_{source}")
    published, published_hash = _published_hash(edge_settings)
    before = raw_snapshot(edge_settings)
    pages.requests.clear()

    source = _break(edge_settings, pages, case)
    with pytest.raises(AirflowFailException) as err:  # Airflow does not retry this
        tasks.run_load(source, END, END + timedelta(days=1), "bad_run")
    assert isinstance(err.value, tasks.LoadBlocked)
    assert_names(str(err.value), *named)
    assert max(pages.requests.values(), default=0) <= 1  # no request repeated
    assert raw_snapshot(edge_settings) == before
    assert hashlib.sha256(published.read_bytes()).hexdigest() == published_hash
    status = query(edge_settings, "select status from audit.pipeline_runs where run_id = 'bad_run'")
    assert status == [("failed",)]
