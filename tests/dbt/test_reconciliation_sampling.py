"""assert_kpi_daily_totals_reconcile_with_facts counts active customers directly on sampled
days: the last 28 days and every 7th day before them on a full build, every 28th on an
incremental day (dbt_project/tests/, docs/decisions.md "The incremental day")."""

from __future__ import annotations

import shutil
from datetime import timedelta

import duckdb
import pytest

from ops_warehouse.pipeline.transform import DbtFailed, dbt_invoke
from tests.conftest import make_settings
from tests.dbt.conftest import MARTS_UNTIL

TEST = ["--select", "assert_kpi_daily_totals_reconcile_with_facts"]


def _miscount(settings, day) -> None:
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        changed = con.execute(
            "update marts.kpi_daily set active_customers = active_customers + 1 "
            "where date_day = ? returning date_day",
            [day],
        ).fetchall()
    finally:
        con.close()
    assert changed, f"no kpi_daily row on {day}"


def test_each_mode_catches_a_miscounted_day_it_samples(duckdb_marts, tmp_path):
    settings = make_settings(tmp_path / "home", tmp_path / "world", "http://127.0.0.1:1")
    settings.warehouse_path.parent.mkdir(parents=True)
    shutil.copy(duckdb_marts.warehouse_path, settings.warehouse_path)

    def daily():
        dbt_invoke(["build", *TEST], settings=settings, as_of=MARTS_UNTIL)

    def full():
        dbt_invoke(["build", "--full-refresh", *TEST], settings=settings, as_of=MARTS_UNTIL)

    weekly_only = MARTS_UNTIL - timedelta(days=63)  # a multiple of 7 days back, not of 28
    _miscount(settings, weekly_only)
    daily()  # not sampled on an incremental day: the rest of the built warehouse reconciles
    with pytest.raises(DbtFailed, match="assert_kpi_daily_totals_reconcile_with_facts"):
        full()
    _miscount(settings, MARTS_UNTIL - timedelta(days=56))  # 28-day multiple: sampled by both
    with pytest.raises(DbtFailed, match="assert_kpi_daily_totals_reconcile_with_facts"):
        daily()
