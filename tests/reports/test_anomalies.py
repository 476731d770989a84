"""Anomalies: a value more than N standard deviations from its trailing 8-period mean."""

from __future__ import annotations

import dataclasses
import shutil
import statistics
from datetime import date, timedelta

import duckdb
import pytest

from ops_warehouse.reports import anomalies, content, periods
from ops_warehouse.reports.formatting import Formatter
from ops_warehouse.reports.i18n import Messages

HISTORY = [100.0, 104.0, 98.0, 101.0, 97.0, 103.0, 99.0, 102.0]


def test_a_spike_beyond_sigma_is_an_anomaly():
    mean, sd = statistics.fmean(HISTORY), statistics.stdev(HISTORY)
    spike = mean + 3 * sd
    found = anomalies.detect("orders", spike, HISTORY, sigma=2.5)
    assert found is not None and found.direction == "up"
    assert found.sigmas == pytest.approx(3.0)
    assert found.change_vs_mean == pytest.approx((spike - mean) / mean)
    assert anomalies.detect("orders", mean - 3 * sd, HISTORY, 2.5).direction == "down"


def test_a_normal_value_is_not_an_anomaly():
    mean, sd = statistics.fmean(HISTORY), statistics.stdev(HISTORY)
    assert anomalies.detect("orders", mean + 2.4 * sd, HISTORY, sigma=2.5) is None
    assert (
        anomalies.detect_all(
            {"orders": mean, "csat": 0.8}, {"orders": HISTORY, "csat": [0.8, 0.81, 0.79] * 3}, 2.5
        )
        == []
    )


def test_fewer_than_eight_periods_are_not_assessed():
    assert anomalies.detect("orders", 10_000.0, HISTORY[:7], sigma=2.5) is None
    assert anomalies.detect("orders", 10_000.0, [None, *HISTORY[:7]], sigma=2.5) is None
    assert anomalies.detect("orders", None, HISTORY, sigma=2.5) is None
    assert anomalies.detect_all({"new_kpi": 5.0}, {}, 2.5) == []


def test_a_window_that_never_moved_flags_any_change():
    assert anomalies.detect("orders", 5.0, [4.0] * 8, sigma=2.5).sigmas == float("inf")
    assert anomalies.detect("orders", 4.0, [4.0] * 8, sigma=2.5) is None


def test_sigma_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        anomalies.detect("orders", 1.0, HISTORY, sigma=0)


@pytest.fixture
def planted(published, tmp_path):
    """A private copy of the published warehouse whose W47 orders are far above their range."""
    copy = tmp_path / "published.duckdb"
    shutil.copyfile(published.published_path, copy)
    week = date.fromisocalendar(2026, 47, 1)
    weeks = [week - timedelta(weeks=k) for k in range(1, 9)]
    with duckdb.connect(str(copy)) as con:
        history = [
            r[0]
            for r in con.execute(
                "select value from marts.kpi_scorecard where period_grain = 'week' and kpi = "
                "'orders' and period_start in (" + ", ".join("?" * 8) + ")",
                weeks,
            ).fetchall()
        ]
        mean, sd = statistics.fmean(history), statistics.stdev(history)
        spike = round(mean + 6 * sd)
        con.execute(
            "update marts.kpi_scorecard set value = ? where period_grain = 'week' "
            "and kpi = 'orders' and period_start = ?",
            [spike, week],
        )
    return dataclasses.replace(published, published_path=copy), spike, mean


def test_a_planted_spike_is_reported_with_its_sentence(planted):
    settings, spike, mean = planted
    report = content.build(settings, periods.week("2026-W47"), "en")
    fmt = Formatter(Messages("en"), settings.reporting_currency)
    expected = (
        f"Orders rose {fmt.percent((spike - mean) / mean, 0)} to {fmt.count(spike)}, "
        "above its 8-week range."
    )
    assert expected in report.attention
    assert [a.kpi for a in report.anomalies].count("orders") == 1
