"""A week whose runs were blocked: nothing new was published, the Monday report still goes
out from the last published data and says since when it is stale. And which report each kind
of reports-DAG run makes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from types import SimpleNamespace

import duckdb
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from ops_warehouse.airflow import report_tasks
from ops_warehouse.pipeline import audit
from ops_warehouse.reports.formatting import Formatter
from ops_warehouse.reports.i18n import Messages
from tests.smtp import smtp_fixture  # noqa: F401 (the smtp fixture)

MONDAY_AFTER = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # the Monday after week 48


def _context(logical_date, run_type, events=None):
    return {
        "logical_date": logical_date,
        "dag_run": SimpleNamespace(run_type=run_type),
        "triggering_asset_events": events or {},
    }


@pytest.fixture
def blocked_week(published, tmp_path, monkeypatch):
    """Week 48's transform run was blocked (recorded in the working warehouse); the
    published file is still the one of week 47."""
    settings = dataclasses.replace(published, reports_dir=tmp_path / "reports")
    blocked = audit.RunInfo("transform", "scheduled__2026-11-24")
    audit.record_run_start(settings, blocked, as_of=date(2026, 11, 23))
    audit.record_run_finish(settings, blocked, "blocked", message="blocking checks failed")
    monkeypatch.setattr("ops_warehouse.settings.get_settings", lambda: settings)
    return settings


def test_monday_report_goes_out_stale_from_the_last_published_data(blocked_week, smtp):
    with duckdb.connect(str(blocked_week.published_path), read_only=True) as con:
        (as_of,) = con.execute(
            "select max(as_of_date) from audit.pipeline_runs where status = 'published'"
        ).fetchone()
    summary = report_tasks.make_report("weekly", _context(MONDAY_AFTER, "scheduled"))
    assert summary["period"] == "2026-W48" and summary["delivery"] == "sent"
    expected = f"Data is stale since {Formatter(Messages('en'), 'USD').day(as_of)}"
    assert summary["stale"].startswith(expected)
    html = open(summary["html"], encoding="utf-8").read()
    assert 'id="stale"' in html and expected in html
    text = smtp.messages[0].get_payload()[0].get_payload()[0].get_payload(decode=True).decode()
    assert expected in text


def test_a_publish_makes_the_digest_of_the_day_it_published(blocked_week):
    event = SimpleNamespace(extra={"as_of_date": "2026-11-20"})
    context = _context(None, "asset_triggered", {"published": [event]})
    context["dag_run"].run_after = datetime(2026, 11, 25, 3, tzinfo=UTC)
    summary = report_tasks.make_report("daily", context)
    assert summary["period"] == "2026-11-20" and summary["stale"] is None


def test_a_manual_run_reports_as_of_its_logical_date(blocked_week):
    context = _context(datetime(2026, 11, 23, tzinfo=UTC), "manual")
    assert report_tasks.make_report("weekly", context)["period"] == "2026-W47"
    assert report_tasks.make_report("daily", context)["period"] == "2026-11-22"


def test_a_monday_before_the_first_publish_skips_instead_of_failing(
    published, tmp_path, monkeypatch
):
    """A new deployment's first Monday can come before anything was published."""
    settings = dataclasses.replace(
        published,
        published_path=tmp_path / "none" / "published.duckdb",
        reports_dir=tmp_path / "reports",
    )
    monkeypatch.setattr("ops_warehouse.settings.get_settings", lambda: settings)
    with pytest.raises(AirflowSkipException, match="nothing to report yet"):
        report_tasks.make_report("weekly", _context(MONDAY_AFTER, "scheduled"))
    assert not (tmp_path / "reports" / "weekly").exists()
