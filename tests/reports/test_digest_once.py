"""A day's digest goes out once: publishing the same day again with the same numbers sends
nothing more; with other numbers it goes out again, marked as a correction (in English and in
Chinese). Driven through the daily_digest DAG's task body, as each publish triggers it."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from email.header import decode_header, make_header
from types import SimpleNamespace

import duckdb
import pytest

from ops_warehouse import settings as settings_module
from ops_warehouse.airflow import report_tasks
from ops_warehouse.pipeline import audit
from ops_warehouse.warehouse import publish
from tests.conftest import MARTS_UNTIL
from tests.quality.wap import working_copy
from tests.smtp import smtp_fixture  # noqa: F401 (the smtp fixture)

DAY = MARTS_UNTIL


@pytest.fixture
def settings(published, tmp_path, monkeypatch):
    """A private copy of the reports' warehouse, its own published file and archive."""
    settings = working_copy(
        published,
        tmp_path / "home",
        reports_dir=tmp_path / "reports",
        daily_digest_recipients=("lead@ops.test",),
    )
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    return settings


def _publish_day(settings, run_id: str) -> dict:
    """A transform run publishing DAY, then the digest its `published` event triggers."""
    run = audit.RunInfo("transform", run_id)
    audit.record_run_start(settings, run, as_of=DAY)
    publish.publish(settings, run)
    event = SimpleNamespace(extra={"as_of_date": DAY.isoformat()})
    context = {
        "logical_date": None,
        "dag_run": SimpleNamespace(run_after=datetime.now(UTC)),
        "triggering_asset_events": {"published": [event]},
    }
    return report_tasks.make_report("daily", context)


def _change_net_revenue(settings, delta: float) -> None:
    """A late correction of the day's net revenue in the marts the next publish copies."""
    with duckdb.connect(str(settings.warehouse_path)) as con:
        changed = con.execute(
            "update marts.kpi_scorecard set value = value + ? "
            "where period_grain = 'day' and period_start = ? and kpi = 'net_revenue'",
            [delta, DAY],
        ).fetchone()[0]
    assert changed == 1


def _subject(message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def _text(message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text part")


def test_a_day_published_again_sends_its_digest_once_unless_its_numbers_changed(settings, smtp):
    first = _publish_day(settings, "scheduled__2026-11-23T00:00:00+00:00")
    assert first["delivery"] == "sent" and not first["correction"]
    assert len(smtp.messages) == 1
    assert not _subject(smtp.messages[0]).startswith("Correction")

    # the same day published again (a re-run, a retried publish): same numbers, no email
    again = _publish_day(settings, "manual__2026-11-23T06:00:00+00:00")
    assert again["delivery"] == "already_sent", again["delivery_summary"]
    assert len(smtp.messages) == 1

    # a re-run with a corrected net revenue: the digest goes out again, as a correction
    _change_net_revenue(settings, 1000.0)
    corrected = _publish_day(settings, "manual__2026-11-23T09:00:00+00:00")
    assert corrected["delivery"] == "sent" and corrected["correction"]
    assert len(smtp.messages) == 2
    message = smtp.messages[1]
    assert _subject(message) == "Correction: " + _subject(smtp.messages[0])
    assert (
        _text(message)
        .splitlines()[0]
        .startswith("!! Correction: this report replaces the one sent")
    )
    html = open(corrected["html"], encoding="utf-8").read()
    assert 'id="correction"' in html
    record = json.loads(open(corrected["html"].replace("report.html", "delivery.json")).read())
    assert [s["correction"] for s in record["sends"]] == [False, True]
    assert record["sends"][0]["fingerprint"] != record["sends"][1]["fingerprint"]

    # the corrected numbers published once more: nothing new to say
    assert _publish_day(settings, "manual__2026-11-23T10:00:00+00:00")["delivery"] == (
        "already_sent"
    )
    assert len(smtp.messages) == 2


def test_a_correction_in_chinese_says_so_in_its_subject(settings, smtp, monkeypatch):
    settings = dataclasses.replace(settings, report_language="zh-CN")
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    _publish_day(settings, "scheduled__2026-11-23T00:00:00+00:00")
    _change_net_revenue(settings, -500.0)
    _publish_day(settings, "manual__2026-11-23T09:00:00+00:00")
    assert len(smtp.messages) == 2
    assert _subject(smtp.messages[1]) == "更正：" + _subject(smtp.messages[0])
    assert _text(smtp.messages[1]).startswith("!! 更正：")
