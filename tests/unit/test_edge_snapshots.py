"""Landing sheets are snapshots: raw holds exactly the current files' rows.

A bad sheet row never reaches a model (it is quarantined at the edge, or the load stops
naming it); the corrected file replaces its rows at the next load, a removed file's rows leave
raw, with no manual step; earlier versions stay in the raw archive, and a rebuild from the
archive restores the current snapshot, not what was withdrawn.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from ops_warehouse.errors import is_permanent
from ops_warehouse.pipeline.loading import QuarantineThresholdExceeded, load_source
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.pipeline.transform import dbt_invoke
from ops_warehouse.warehouse.queries import query
from tests.conftest import make_settings

DAY = date(2026, 11, 22)
SHEETS = ["budget", "kpi_targets"]
STAGING = "stg_marketing__budgets"

PLAN = (
    "month,channel,planned_spend,currency\n"
    "2026-10,google_ads,1000.00,USD\n2026-10,meta_ads,800.00,EUR\n"
    "2026-11,google_ads,1100.00,USD\n2026-11,meta_ads,900.00,EUR\n"
    "2026-12,google_ads,1200.00,USD\n2026-12,meta_ads,950.00,EUR\n"
)
TARGETS = "month,kpi,target\n2026-10,net_revenue,50000\n2026-11,net_revenue,52000\n"
BAD_REVISION = (
    "month,channel,planned_spend,currency\n"
    "Nov 2026,google_ads,1150.00,USD\n"
    "2026-12,google_ads,1300.00,USD\n"
)
CORRECTED_REVISION = BAD_REVISION.replace("Nov 2026", "2026-11")


def window(offset: int) -> Window:
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(days=offset)
    return Window(start, start + timedelta(days=1))


@pytest.fixture
def sheet_settings(tmp_path):
    landing = tmp_path / "world" / "landing"
    landing.mkdir(parents=True)
    (landing / "budget_2026-10-01.csv").write_text(PLAN)
    (landing / "kpi_targets_2026-10-01.csv").write_text(TARGETS)
    # no API is asked: only the sheets are loaded
    return make_settings(tmp_path / "home", tmp_path / "world", "http://127.0.0.1:9")


def load(settings, offset: int):
    return load_source("marketing", window(offset), settings=settings, entities=SHEETS)


def raw_budget(settings) -> list[tuple]:
    return sorted(
        query(
            settings,
            "select _file_name, month, channel, cast(planned_spend as varchar) "
            "from raw_marketing.budget",
        )
    )


def staged_budget(settings) -> dict[tuple, tuple]:
    rows = query(
        settings,
        "select cast(month_start as varchar), channel, cast(planned_spend as varchar), "
        "_file_name from staging.stg_marketing__budgets",
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def transform(settings, offset: int) -> None:
    """dbt builds the budget's staging model and its tests (where the bad month used to fail
    every run as `Conversion Error: invalid date field format`)."""
    dbt_invoke(
        ["build", "--select", STAGING, "--exclude-resource-type", "unit_test"],
        settings=settings,
        as_of=window(offset).last_day,
    )


def test_bad_then_corrected_then_removed_sheet_needs_no_manual_step(sheet_settings):
    settings = sheet_settings
    landing = settings.landing_dir
    load(settings, 0)
    plan = sorted(("budget_2026-10-01.csv", *line.split(",")) for line in PLAN.splitlines()[1:])
    assert [r[:4] for r in raw_budget(settings)] == [p[:4] for p in plan]

    # a revision with a month written as text: 1 of 8 rows, above the 1 % threshold
    (landing / "budget_2026-11-15.csv").write_text(BAD_REVISION)
    with pytest.raises(QuarantineThresholdExceeded) as err:
        load(settings, 1)
    assert is_permanent(err.value)
    for part in ("marketing.budget", "budget_2026-11-15.csv", "line 2", "'month'", "'Nov 2026'"):
        assert part in str(err.value)
    assert [r[:4] for r in raw_budget(settings)] == [p[:4] for p in plan]

    # with a lenient threshold the bad row is quarantined and the rest loads: dbt succeeds
    lenient = dataclasses.replace(settings, quarantine_threshold=1.0)
    summary = load(lenient, 1)
    assert summary.entities["budget"].rows_quarantined == 1
    transform(settings, 1)
    staged = staged_budget(settings)
    assert staged[("2026-12-01", "google_ads")] == ("1300.00", "budget_2026-11-15.csv")
    assert ("2026-12-01", "meta_ads") not in staged  # the newest file's months are its own

    # the corrected file replaces its rows at the next load, with the default threshold
    (landing / "budget_2026-11-15.csv").write_text(CORRECTED_REVISION)
    load(settings, 2)
    revision = [r for r in raw_budget(settings) if r[0] == "budget_2026-11-15.csv"]
    assert revision == [
        ("budget_2026-11-15.csv", "2026-11", "google_ads", "1150.00"),
        ("budget_2026-11-15.csv", "2026-12", "google_ads", "1300.00"),
    ]
    transform(settings, 2)
    assert staged_budget(settings)[("2026-11-01", "google_ads")] == (
        "1150.00",
        "budget_2026-11-15.csv",
    )

    # a removed file's rows leave raw, which is what staging reads
    (landing / "budget_2026-11-15.csv").unlink()
    load(settings, 3)
    assert [r[:4] for r in raw_budget(settings)] == [p[:4] for p in plan]

    # the quarantine keeps what was set aside, as audit history
    reasons = [r[0] for r in query(settings, "select reason from raw_marketing._quarantine")]
    assert len(reasons) == 1 and "'Nov 2026'" in reasons[0]


def test_the_archive_keeps_withdrawn_versions_and_a_rebuild_restores_the_current_one(
    sheet_settings,
):
    from ops_warehouse.pipeline.raw_archive import ROWS, Archive
    from ops_warehouse.pipeline.rebuild import rebuild

    settings, landing = sheet_settings, sheet_settings.landing_dir
    (landing / "budget_2026-11-15.csv").write_text(CORRECTED_REVISION)
    load(settings, 0)
    load(settings, 1)  # nothing changed: nothing archived
    (landing / "budget_2026-11-15.csv").write_text(CORRECTED_REVISION.replace("1300", "1400"))
    load(settings, 2)
    (landing / "budget_2026-11-15.csv").unlink()
    load(settings, 3)
    current = raw_budget(settings)
    assert {r[0] for r in current} == {"budget_2026-10-01.csv"}

    loads = Archive.of(settings).loads("marketing")["budget"]
    assert [load.manifest["snapshot"] for load in loads] == [True, True, True]
    assert [load.rows(ROWS) for load in loads] == [8, 8, 6]  # whole snapshots, when changed

    rebuild(settings, sources=("marketing",), force=True)
    assert raw_budget(settings) == current
