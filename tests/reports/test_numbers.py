"""Every number a report shows is the published marts' number: the CSV exactly, the HTML as
displayed (rounded to what it shows). Expected values come from queries written here, against
the published file, not from the report's own queries."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import duckdb
import pytest

from ops_warehouse.reports.formatting import KPI_UNITS
from tests.reports.conftest import WEEK
from tests.reports.page import Cells, close_to_shown, number

WEEK_START = date.fromisocalendar(2026, 47, 1)
MONTH_START = date(2026, 11, 1)


def _published(settings, sql, params=()):
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _scorecard(settings, grain: str, start: date, columns: str) -> dict:
    """kpi → (columns…) of the published kpi_scorecard rows of one period."""
    rows = _published(
        settings,
        f"select kpi, {columns} from marts.kpi_scorecard "
        "where period_grain = ? and period_start = ?",
        [grain, start],
    )
    return {r[0]: r[1:] for r in rows}


def _csv(run) -> list[dict]:
    return list(csv.DictReader(io.StringIO(run.archived.csv.read_text(encoding="utf-8"))))


def _f(text: str) -> float | None:
    return float(text) if text != "" else None


def test_weekly_csv_is_the_published_scorecard(published, weekly):
    week = _scorecard(published, "week", WEEK_START, "value, previous_value, change_pct")
    month = _scorecard(published, "month", MONTH_START, "target, target_attainment, status")
    rows = _csv(weekly)
    assert {r["kpi"] for r in rows} == set(week), "every weekly KPI, nothing else"
    for r in rows:
        assert r["period_start"] == WEEK_START.isoformat()
        assert r["previous_period_start"] == (WEEK_START - timedelta(days=7)).isoformat()
        assert (_f(r["value"]), _f(r["previous_value"]), _f(r["change_pct"])) == week[r["kpi"]]
        target, attainment, status = month[r["kpi"]]
        assert (_f(r["month_target"]), _f(r["month_target_attainment"])) == (target, attainment)
        assert r["month_status"] == status


def test_weekly_html_scorecard_shows_the_published_values(published, weekly):
    week = _scorecard(published, "week", WEEK_START, "value, previous_value, change_pct")
    month = _scorecard(published, "month", MONTH_START, "target, target_attainment")
    rows = Cells(weekly.archived.html.read_text(encoding="utf-8")).rows
    shown = {key: cells for (attr, key), cells in rows.items() if attr == "kpi"}
    assert set(shown) == set(week)
    checked = 0
    for kpi, cells in shown.items():
        minutes = KPI_UNITS[kpi] == "minutes"
        value, previous, change = week[kpi]
        target, attainment = month[kpi]
        for cell, expected in (
            ("value", value),
            ("previous", previous),
            ("change", change),
            ("target", target),
            ("attainment", attainment),
        ):
            if expected is None:
                assert cells[cell] in ("", "n/a"), f"{kpi}.{cell}: {cells[cell]!r}"
                continue
            assert close_to_shown(
                cells[cell], expected, minutes=minutes and cell != "change" and cell != "attainment"
            ), f"{kpi}.{cell}: shows {cells[cell]!r}, published {expected!r}"
            checked += 1
    assert checked > 60


def test_cost_benefit_table_is_channel_roi_monthly(published, weekly):
    expected = _published(
        published,
        "select channel, month_start, spend, planned_spend, new_customers, cac, roas_90d "
        "from marts.channel_roi_monthly where month_start in (?, ?)",
        [MONTH_START, date(2026, 10, 1)],
    )
    rows = Cells(weekly.archived.html.read_text(encoding="utf-8")).rows
    assert len(expected) > 4
    for channel, month, spend, planned, new_customers, cac, roas in expected:
        cells = rows[("channel", f"{channel}|{month.isoformat()}")]
        assert close_to_shown(cells["spend"], float(spend))
        if planned is not None:
            assert close_to_shown(cells["planned_spend"], float(planned))
        assert number(cells["new_customers"]) == new_customers
        if cac is not None:
            assert close_to_shown(cells["cac"], float(cac))
        if roas is not None:
            assert close_to_shown(cells["roas_90d"], float(roas))


def test_data_quality_section_counts_the_published_audit_trail(published, weekly):
    ((run, failed, warned),) = _published(
        published,
        "select count(*), count(*) filter (where not success and severity = 'block'), "
        "count(*) filter (where not success and severity = 'warn') from audit.dq_results r "
        "join audit.pipeline_runs p using (dag_id, run_id) "
        "where p.as_of_date between ? and ?",
        [WEEK_START, WEEK_START + timedelta(days=6)],
    )
    quarantined = dict(
        _published(published, "select source, count(*) from audit.quarantine group by source")
    )
    html = weekly.archived.html.read_text(encoding="utf-8")
    page = Cells(html)
    assert run > 0 and warned > 0, "the fixture records checks, one of them a warning"
    for cls, value in (("checks_run", run), ("checks_failed", failed), ("checks_warned", warned)):
        shown = re.search(rf'<dd class="{cls}">([^<]*)</dd>', html)[1]
        assert number(shown) == value, cls
    for source, n in quarantined.items():
        assert number(page.rows[("source", source)]["rows"]) == n


def test_daily_digest_compares_with_the_same_weekday_a_week_before(published, daily):
    day = date.fromisoformat(daily.rendered.content.period.key)
    values = {k: v[0] for k, v in _scorecard(published, "day", day, "value").items()}
    before = {
        k: v[0] for k, v in _scorecard(published, "day", day - timedelta(days=7), "value").items()
    }
    rows = _csv(daily)
    assert rows, "the digest has a scorecard"
    for r in rows:
        assert _f(r["value"]) == values[r["kpi"]]
        assert _f(r["previous_value"]) == before[r["kpi"]]
        if values[r["kpi"]] is not None and before[r["kpi"]]:
            assert _f(r["change_pct"]) == pytest.approx(
                (values[r["kpi"]] - before[r["kpi"]]) / abs(before[r["kpi"]])
            )


def test_the_latest_week_is_the_last_complete_one(weekly):
    assert weekly.rendered.content.period.key == WEEK
    assert weekly.archived.folder.parts[-2:] == ("weekly", WEEK)
