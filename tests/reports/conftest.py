"""One published warehouse for every report test: the shared marts world (``duckdb_marts``)
published as the transform DAG publishes it, with a day of check results and a quarantined
row, so that the data-quality section has something to show."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from ops_warehouse.pipeline import audit
from ops_warehouse.pipeline.audit import RunInfo
from ops_warehouse.pipeline.quality.results import CheckResult
from ops_warehouse.reports.build import run_report
from ops_warehouse.warehouse import publish
from tests.conftest import MARTS_UNTIL
from tests.quality.wap import PASSED, WARNING, quarantine_row, working_copy

WEEK = "2026-W47"  # the last complete ISO week of the marts world (MARTS_UNTIL is a Sunday)
RUN = RunInfo("transform", "scheduled__2026-11-23", datetime(2026, 11, 23, tzinfo=UTC))
CHECKS = [
    PASSED,
    WARNING,
    CheckResult(
        suite="kpi_daily.marts",
        check="expect_column_values_to_not_be_null",
        column="date_day",
        severity="block",
        success=True,
        unexpected_count=0,
    ),
]


@pytest.fixture(scope="session")
def published(duckdb_marts, tmp_path_factory):
    """Settings whose published warehouse is the marts world as of MARTS_UNTIL."""
    home = tmp_path_factory.mktemp("reports_home")
    settings = working_copy(
        duckdb_marts,
        home,
        reports_dir=home / "reports",
        weekly_report_recipients=("lead@ops.test", "cfo@ops.test"),
        daily_digest_recipients=("lead@ops.test",),
    )
    quarantine_row(
        settings,
        "sales",
        "orders",
        "O-1",
        "no fx rate",
        {"order_id": "O-1", "currency": "XXX"},
        quarantined_at="timestamp '2026-11-20 10:00:00+00'",
    )
    audit.record_run_start(settings, RUN, as_of=MARTS_UNTIL)
    audit.record_dq_results(settings, RUN, CHECKS)
    publish.publish(settings, RUN)
    return settings


@pytest.fixture(scope="session")
def weekly(published):
    """The weekly report of WEEK in English, rendered and archived once (not sent)."""
    return run_report(published, "weekly", period_key=WEEK, language="en", send=False)


@pytest.fixture(scope="session")
def weekly_zh(published, tmp_path_factory):
    settings = dataclasses.replace(published, reports_dir=tmp_path_factory.mktemp("reports_zh"))
    return run_report(settings, "weekly", period_key=WEEK, language="zh-CN", send=False)


@pytest.fixture(scope="session")
def daily(published):
    return run_report(published, "daily", language="en", send=False)
