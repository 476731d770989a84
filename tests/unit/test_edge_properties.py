"""Property-based tests of the edge (Hypothesis): random landing sheets and random API pages.

Whatever is served, a read ends in one of three outcomes and never in an unhandled
exception: rows loaded, rows quarantined with a reason naming where they came from, or a
permanent error naming the file or URL. No row that breaks the contract is ever loaded, and
no row disappears: a sheet's data rows are each loaded or quarantined.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ops_warehouse.pipeline.contracts import CHANNELS, CURRENCIES, entity
from ops_warehouse.pipeline.sources import landing, support
from tests.conftest import make_settings
from tests.unit.test_edge_gallery import TICKETS, WINDOW, PageServer, outcome, ticket

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MONTH = re.compile(r"(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])")
BUDGET = entity("budget")

# --- sheets ----------------------------------------------------------------------------------

cells = st.one_of(
    st.sampled_from(["2026-11", "2026-13", "Nov 2026", "1999-01", " 2026-11", "2026-1"]),
    st.sampled_from(list(CHANNELS) + ["GOOGLE_ADS", "myspace_ads"]),
    st.sampled_from(list(CURRENCIES) + ["usd", "XYZ", "€"]),
    st.sampled_from(["100.00", "-1.00", "1e400", "nan", "inf", "12,30", "0", "1.005", "١٢"]),
    st.decimals(allow_nan=True, allow_infinity=True, places=2).map(str),
    st.text(max_size=12),
    st.just(""),
)
header = st.one_of(
    st.just(BUDGET.field_names),
    st.permutations(BUDGET.field_names),
    st.lists(
        st.one_of(st.sampled_from([*BUDGET.field_names, "note", ""]), st.text(max_size=8)),
        max_size=6,
    ),
)


@st.composite
def sheets(draw) -> bytes:
    columns = draw(header)
    width = len(columns)
    rows = draw(
        st.lists(
            st.lists(cells, min_size=max(width - 1, 0), max_size=width + 1),
            max_size=12,
        )
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(columns)
    writer.writerows(rows)
    text = out.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8")


@pytest.fixture(scope="module")
def landing_dir():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _data_rows(content: bytes) -> int:
    """Non-blank data rows, as a reference CSV reader counts them."""
    text = content.decode("utf-8-sig")
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(r)]
    return max(len(rows) - 1, 0)


@PROPERTY
@given(content=sheets())
def test_any_sheet_is_loaded_quarantined_or_refused_by_name(landing_dir, content):
    path = landing_dir / "budget_2026-11-01.csv"
    path.write_bytes(content)
    result, detail = outcome(lambda: landing.read_sheets(landing_dir, BUDGET, WINDOW))
    event(result)  # pytest --hypothesis-show-statistics shows how often each outcome came
    if result == "permanent":
        assert "marketing.budget" in detail and path.name in detail, detail
        return
    batches = list(landing.read_sheets(landing_dir, BUDGET, WINDOW))
    loaded = [row for b in batches for row in b.table.to_pylist()]
    reasons = [r for b in batches for r in b.quarantined["reason"].to_pylist()]
    assert len(loaded) + len(reasons) == _data_rows(content)  # no row lost
    for reason in reasons:
        assert f"marketing.budget, file {path.name}, line " in reason, reason
    for row in loaded:  # nothing that breaks the contract gets through
        assert MONTH.fullmatch(row["month"]), row
        assert row["channel"] in CHANNELS and row["currency"] in CURRENCIES, row
        assert isinstance(row["planned_spend"], Decimal) and row["planned_spend"] >= 0, row
        assert row["_file_name"] == path.name


# --- API pages -------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def ticket_rows(draw) -> dict[str, Any]:
    """A ticket as the contract has it, half of the time with fields changed, left out or
    added."""
    row = ticket(draw(st.integers(min_value=1, max_value=50)))
    if draw(st.booleans()):
        return row
    for name in draw(st.lists(st.sampled_from(list(row)), min_size=1, max_size=3, unique=True)):
        if draw(st.integers(0, 9)) < 7:
            row[name] = draw(json_values)
        else:
            del row[name]
    if draw(st.integers(0, 9)) == 0:
        row[draw(st.text(min_size=1, max_size=6))] = draw(json_values)
    return row


@st.composite
def broken(draw, body: dict[str, Any]) -> bytes:
    """A page gone wrong: bytes, any JSON, a key changed or left out, or cut short."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=60))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    body = dict(body)
    if kind == 2:
        body[draw(st.sampled_from(list(body)))] = draw(json_values)
    elif kind == 3:
        del body[draw(st.sampled_from(list(body)))]
    text = json.dumps(body, allow_nan=True)
    return text[: draw(st.integers(0, len(text)))].encode() if kind == 4 else text.encode()


@st.composite
def streams(draw) -> list[bytes]:
    """The pages of one incremental export, half of the time with one of them broken."""
    n = draw(st.integers(1, 3))
    bodies = [
        {
            "tickets": draw(st.lists(ticket_rows(), max_size=4)),
            "after_cursor": f"c{i}",
            "end_of_stream": i == n - 1,
        }
        for i in range(n)
    ]
    pages = [json.dumps(b, allow_nan=True).encode() for b in bodies]
    if draw(st.booleans()):
        i = draw(st.integers(0, n - 1))
        pages[i] = draw(broken(bodies[i]))
    return pages


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with PageServer() as server:
        home = tmp_path_factory.mktemp("edge_properties")
        yield server, make_settings(home, home, server.url, http_max_attempts=2)


@PROPERTY
@given(bodies=streams())
def test_any_page_is_loaded_quarantined_or_refused_by_url(api, bodies):
    server, config = api
    server.reset()
    server.serve(TICKETS, *bodies)
    client = support.client(config)
    result, detail = outcome(
        lambda: support.read_incremental(client, entity("tickets"), {}, WINDOW, config)
    )
    event(result)
    # one request per page at most, never a retry; a stream can only end on an answer
    assert server.requests[TICKETS] <= len(bodies) + 1
    if result == "permanent":
        assert "support.tickets" in detail and f"{server.url}{TICKETS}" in detail, detail
        return
    server.reset()
    server.serve(TICKETS, *bodies)
    batches = list(support.read_incremental(client, entity("tickets"), {}, WINDOW, config))
    for reason in (r for b in batches for r in b.quarantined["reason"].to_pylist()):
        assert f"support.tickets, GET {server.url}{TICKETS}, row ticket_id " in reason, reason
    allowed = entity("tickets").allowed or {}
    for row in (row for b in batches for row in b.table.to_pylist()):
        for name, values in allowed.items():
            assert row[name] in values, row
        assert isinstance(row["ticket_id"], int)
        assert row["assignee_id"] is None or isinstance(row["assignee_id"], int)
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in row.values())
