"""Each mart's build runs the mart's accepted_values and within_bounds tests itself
(dbt_project/macros/value_checks.sql), so that an incremental day's dbt selection can leave
those tests out: a value outside them fails the build, names the test, and keeps the table."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil

import pytest

from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.transform import DbtFailed, dbt_invoke
from ops_warehouse.warehouse.engines import engine
from ops_warehouse.warehouse.queries import query
from tests.conftest import drop_pg_database, postgres_settings
from tests.dbt.conftest import MARTS_UNTIL
from tests.helpers import day_window


@pytest.fixture
def marts_copy(duckdb_marts, tmp_path):
    """A copy of the built small world (warehouse and dbt's folders), free to spoil."""
    home = tmp_path / "home"
    shutil.copytree(duckdb_marts.home, home, ignore=shutil.ignore_patterns("published*"))
    return dataclasses.replace(
        duckdb_marts,
        home=home,
        warehouse_path=home / "warehouse" / "working.duckdb",
        published_path=home / "warehouse" / "published.duckdb",
    )


@pytest.fixture
def postgres_campaigns(marts_world, marts_server, tmp_path):
    """A scratch PostgreSQL warehouse with the small world's marketing loaded and dim_campaigns
    built (the mart and what it reads, nothing else)."""
    name = f"ops_test_value_checks_{os.getpid()}"
    settings = postgres_settings(tmp_path / "home", marts_world, marts_server.url, name)
    try:
        load_source("marketing", day_window(MARTS_UNTIL), settings=settings, run_id="test")
        dbt_invoke(["run", "--select", "+dim_campaigns"], settings=settings, as_of=MARTS_UNTIL)
        yield settings
    finally:
        drop_pg_database(name)


def _rows(settings, table: str) -> list[tuple]:
    return sorted(query(settings, f"select * from marts.{table}"), key=str)


@pytest.mark.parametrize("warehouse", ["marts_copy", "postgres_campaigns"])
def test_a_value_outside_a_marts_accepted_values_fails_its_build_and_keeps_the_table(
    request, warehouse
):
    settings = request.getfixturevalue(warehouse)
    before = _rows(settings, "dim_campaigns")
    with engine(settings).transaction() as con:
        con.execute(
            "update staging.stg_marketing__campaigns set channel = 'carrier_pigeon' where "
            "campaign_id in (select campaign_id from staging.stg_marketing__campaigns "
            "order by campaign_id limit 2)"
        )
    with pytest.raises(DbtFailed) as failed:
        dbt_invoke(["run", "--select", "dim_campaigns"], settings=settings, as_of=MARTS_UNTIL)
    message = str(failed.value)
    assert "dim_campaigns" in message and "value checks" in message, message
    # dbt's accepted_values fails once per distinct value outside the set: one here
    assert re.search(r"accepted_values_dim_campaigns_channel\S*: 1 failure\(s\)", message), message
    # the build's transaction rolled back: the mart holds what it held
    assert _rows(settings, "dim_campaigns") == before


def test_a_value_below_a_marts_bound_fails_its_build_and_keeps_the_table(marts_copy):
    """within_bounds (min_value 0 on spend): one campaign month's spend made negative."""
    before = _rows(marts_copy, "campaign_performance_monthly")
    with engine(marts_copy).transaction() as con:
        con.execute(
            "update intermediate.int_ad_performance_monthly set spend = -1 where campaign_id = "
            "(select min(campaign_id) from intermediate.int_ad_performance_monthly)"
        )
    with pytest.raises(DbtFailed) as failed:
        dbt_invoke(
            ["run", "--select", "campaign_performance_monthly"],
            settings=marts_copy,
            as_of=MARTS_UNTIL,
        )
    message = str(failed.value)
    assert re.search(r"within_bounds_campaign_performance_monthly_spend\S*: [1-9]", message), (
        message
    )
    assert _rows(marts_copy, "campaign_performance_monthly") == before


def test_a_where_scoped_accepted_values_fails_only_in_its_scope(marts_copy):
    """churn_drivers' dimension_value has one accepted set per dimension (each test with a
    `where`): a channel nobody sells through fails the acquisition channels' test, while the
    same column's segments and countries, outside that set, fail nothing."""
    before = _rows(marts_copy, "churn_drivers")
    with engine(marts_copy).transaction() as con:
        planted = con.modify(
            "update marts.dim_customers set acquisition_channel = 'carrier_pigeon' "
            "where customer_id in (select customer_id from marts.dim_customers "
            f"where first_order_at < timestamp '{MARTS_UNTIL.isoformat()}' - interval 120 day "
            "order by customer_id limit 3)"
        )
    assert planted == 3
    with pytest.raises(DbtFailed) as failed:
        dbt_invoke(["run", "--select", "churn_drivers"], settings=marts_copy, as_of=MARTS_UNTIL)
    failures = re.findall(r"(accepted_values_\S+): (\d+) failure\(s\)", str(failed.value))
    assert len(failures) == 1, str(failed.value)
    ((name, count),) = failures
    assert "google_ads" in name and count == "1", failures  # the channels' test
    assert _rows(marts_copy, "churn_drivers") == before


def test_a_mart_within_its_tests_builds(marts_copy):
    """The checks pass on good data: every mart builds with its post-hook (dbt run, no tests)."""
    dbt_invoke(["run", "--select", "path:models/marts"], settings=marts_copy, as_of=MARTS_UNTIL)
    assert query(marts_copy, "select count(*) from marts.dim_campaigns")[0][0] > 0
