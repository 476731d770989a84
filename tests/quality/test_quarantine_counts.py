"""Quarantined rows are counted once and dated by their run: a load that sets N rows aside
shows N in ``audit.quarantine`` of the working and of the published warehouse, on DuckDB and
PostgreSQL, and N in the digest of the day that run loaded. The published copy holds none of
the payloads' personal data or free text."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from ops_warehouse import settings as settings_module
from ops_warehouse.airflow import tasks as pipeline_tasks
from ops_warehouse.pipeline import audit
from ops_warehouse.reports.build import run_report
from ops_warehouse.warehouse import publish
from ops_warehouse.warehouse.engines import engine
from ops_warehouse.warehouse.queries import query
from tests.conftest import MARTS_UNTIL, UNTIL, drop_pg_database, scratch_pg_database
from tests.quality.wap import working_copy

EMAIL = "jane.quarantine@example.com"
SUBJECT = "Refund please, Jane Quarantine, card ending 4242"


def _ticket(ticket_id: int, **changes) -> dict:
    return {
        "ticket_id": ticket_id,
        "requester_email": EMAIL,
        "subject": SUBJECT,
        "category": "billing",
        "channel": "email",
        "priority": "low",
        "status": "open",
        "assignee_id": None,
        "created_at": "2026-11-21T08:00:00Z",
        "updated_at": "2026-11-21T08:00:00Z",
        **changes,
    }


# Three rows that break row-level rules; one carries a field the contract does not know.
BAD_ROWS = {
    "tickets": [
        _ticket(990001, priority="critical", phone="+1 555 0100"),
        _ticket(990002, created_at="2027-03-01T08:00:00Z"),
    ],
    "ticket_events": [
        {
            "event_id": 990001,
            "ticket_id": 990001,
            "created_at": "yesterday",
            "event_type": "comment",
            "author_role": "agent",
            "is_public": True,
            "new_status": None,
            "score": None,
        }
    ],
}
N = 3


def _ingest(settings, monkeypatch, day, run_id: str) -> int:
    """The support ingest task's body for one day (the Airflow path: run recorded in the
    audit trail with its as-of date); returns the rows it says it quarantined."""
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    result = pipeline_tasks.run_load("support", start, start + timedelta(days=1), run_id)
    return sum(e["rows_quarantined"] for e in result["entities"].values())


def _count(settings, sql: str) -> int:
    return query(settings, sql)[0][0]


@pytest.fixture(params=["duckdb", "postgres"])
def bad_load(request, settings, server):
    """The small world's support API serving BAD_ROWS; settings on DuckDB, then on scratch
    PostgreSQL databases (working and published)."""
    server.configure(bad_rows=BAD_ROWS)
    # a handful of bad rows in a small world is far above 1 %: lift the threshold here
    settings = dataclasses.replace(settings, quarantine_threshold=1.0)
    if request.param == "duckdb":
        yield settings
        return
    name = f"ops_test_qcounts_{os.getpid()}"
    url = scratch_pg_database(name)
    drop_pg_database(f"{name}_published")
    yield dataclasses.replace(
        settings, warehouse="postgres", postgres_url=url, published_postgres_url=f"{url}_published"
    )
    drop_pg_database(f"{name}_published")
    drop_pg_database(name)


def _published(settings, sql: str) -> list[tuple]:
    with engine(settings).published() as db:
        return db.fetch(sql)


def test_a_run_that_quarantines_n_rows_shows_n_in_working_and_published(bad_load, monkeypatch):
    settings = bad_load
    run_id = "scheduled__2026-11-22T00:00:00+00:00"
    assert _ingest(settings, monkeypatch, UNTIL, run_id) == N
    # dlt's merge left the same rows in raw_support_staging: the view must not read them
    staging = _count(settings, "select count(*) from raw_support_staging._quarantine")
    assert staging > 0, "the staging copy the view must skip is there"
    # a second run of the same day sets the same rows aside again: still kept once
    assert _ingest(settings, monkeypatch, UNTIL, run_id) == N

    with audit.connect(settings) as db:
        audit.ensure_schema(db)
    assert _count(settings, "select count(*) from audit.quarantine") == N
    assert query(settings, "select distinct as_of_date, run_id from audit.quarantine") == [
        (UNTIL, run_id)
    ]
    with engine(settings).transaction() as db:  # publish needs marts; these have one table
        db.execute("create schema if not exists marts")
        db.execute("create table marts.kpi_daily as select 1 as placeholder")
    publish.publish(settings, audit.RunInfo("transform", run_id))

    rows = _published(settings, "select entity, payload, reason, as_of_date from audit.quarantine")
    assert len(rows) == N
    assert {r[3] for r in rows} == {UNTIL}
    text = json.dumps([[str(v) for v in r] for r in rows])
    # no free text and no personal data in the published copy, hashed e-mails aside
    assert EMAIL not in text and "Jane" not in text and "4242" not in text and "555" not in text
    tickets = [json.loads(p) for e, p, *_ in rows if e == "tickets"]
    assert all("subject" not in t for t in tickets)
    assert {t["requester_email"] for t in tickets} == {hashlib.sha256(EMAIL.encode()).hexdigest()}
    assert ["phone", "subject"] in [t["_withheld"] for t in tickets]
    # the working warehouse keeps every payload as served, for replay
    working = query(settings, "select payload from audit.quarantine where entity = 'tickets'")
    assert all(EMAIL in p and SUBJECT in p for (p,) in working)


def test_the_digest_of_a_day_counts_the_rows_its_runs_quarantined(
    duckdb_marts, marts_server, tmp_path, monkeypatch
):
    settings = working_copy(
        duckdb_marts,
        tmp_path / "home",
        reports_dir=tmp_path / "reports",
        quarantine_threshold=1.0,
    )
    marts_server.configure(bad_rows=BAD_ROWS)
    try:
        run_id = f"scheduled__{MARTS_UNTIL}T00:00:00+00:00"
        assert _ingest(settings, monkeypatch, MARTS_UNTIL, run_id) == N
    finally:
        marts_server.reset()
    transform = audit.RunInfo("transform", run_id)
    audit.record_run_start(settings, transform, as_of=MARTS_UNTIL)
    publish.publish(settings, transform)

    digest = run_report(settings, "daily", period_key=MARTS_UNTIL.isoformat(), send=False)
    assert digest.rendered.content.data_quality["quarantined"] == [
        {"source": "support", "rows_quarantined": N}
    ]
    assert f"Rows quarantined: support {N}" in digest.rendered.text
    # the day after (quarantined by no run of its own) shows none, whenever the rows were
    # set aside by the clock
    later = (MARTS_UNTIL + timedelta(days=1)).isoformat()
    assert (
        run_report(settings, "daily", period_key=later, send=False).rendered.content.data_quality[
            "quarantined"
        ]
        == []
    )
