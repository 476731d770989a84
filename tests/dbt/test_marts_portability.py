"""The same models build on DuckDB and PostgreSQL and give identical marts on the same data; on
both, the marts' not-null columns are constraints the warehouse enforces."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ops_warehouse.pipeline.quality.gx_runner import load_suites
from ops_warehouse.pipeline.transform import dbt_command, dbt_env
from ops_warehouse.warehouse.engines import DuckDB, Postgres, Spark, engine
from ops_warehouse.warehouse.queries import query
from tests.helpers import MART_TABLES, frames_differ, read_table


@pytest.mark.parametrize("table", MART_TABLES)
def test_duckdb_and_postgres_marts_are_identical(duckdb_marts, postgres_marts, table):
    duck = read_table(duckdb_marts, "marts", table)
    pg = read_table(postgres_marts, "marts", table)
    assert len(duck) > 0, f"marts.{table} is empty on the demo world"
    difference = frames_differ(duck, pg)
    assert difference is None, f"marts.{table}: {difference}"


def _manifest_nodes(settings) -> dict[str, dict]:
    """The nodes of the manifest the build wrote, by unique id."""
    return json.loads((settings.home / "dbt" / "target" / "manifest.json").read_text())["nodes"]


def _not_null_tests_and_constraints(settings) -> tuple[set, set]:
    """The (mart, column) pairs of the marts' not_null tests, and of their columns declared
    NOT NULL in the contracts, as the build's manifest has them."""
    tests, constraints = set(), set()
    for node in _manifest_nodes(settings).values():
        in_marts = node["original_file_path"].startswith("models/marts/")
        if node["resource_type"] == "model" and in_marts:
            for column in node["columns"].values():
                if any(c["type"] == "not_null" for c in column.get("constraints") or []):
                    constraints.add((node["name"], column["name"]))
        meta = node.get("test_metadata") or {}
        if node["resource_type"] == "test" and meta.get("name") == "not_null" and in_marts:
            tests.add((node["attached_node"].split(".")[-1], node["column_name"]))
    return tests, constraints


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_the_marts_not_null_columns_are_constraints_the_warehouse_enforces(request, warehouse):
    """An incremental day's dbt build leaves the marts' not_null tests to the tables
    (dbt_project/selectors.yml, `daily`): that holds only while every column such a test names
    is NOT NULL in the table, on every engine that skips the tests."""
    settings = request.getfixturevalue(f"{warehouse}_marts")
    tests, constraints = _not_null_tests_and_constraints(settings)
    assert len(tests) > 100, tests
    # every mart has one (a mart with none would look older than the constraints to run_mode)
    assert {table for table, _ in constraints} == set(MART_TABLES)
    assert tests == constraints, {
        "tested, not constrained": sorted(tests - constraints),
        "constrained, not tested": sorted(constraints - tests),
    }
    not_nullable = set(
        query(
            settings,
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'marts' and is_nullable = 'NO'",
        )
    )
    assert not_nullable == constraints
    # a null is refused, and the error names the column
    with (
        pytest.raises(Exception, match=r"(?is)not.null.*cogs|cogs.*not.null"),
        engine(settings).transaction() as con,
    ):
        con.execute(
            "update marts.fct_orders set cogs = null "
            "where order_id = (select min(order_id) from marts.fct_orders)"
        )
    assert query(settings, "select count(*) from marts.fct_orders where cogs is null") == [(0,)]


def _selected_tests(settings, selector: str) -> set[str]:
    """The tests `dbt build --selector <selector>` runs, by unique id."""
    listed = subprocess.run(
        dbt_command(
            [
                "ls",
                "--quiet",
                "--selector",
                selector,
                "--resource-type",
                "test",
                "--output",
                "json",
                "--output-keys",
                "unique_id",
            ],
            settings,
        ),
        env={**os.environ, **dbt_env(settings)},
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        json.loads(line)["unique_id"] for line in listed.stdout.splitlines() if line.startswith("{")
    }


# singular tests left out of `daily` (dbt_project/selectors.yml): the suite and the column of the
# Great Expectations check that tests the same identity on every run
GX_CHECKS_EVERY_RUN = {
    "assert_kpi_daily_net_revenue_reconciles": (
        "revenue_reconciliation.marts",
        {"kpi_daily_minus_fct_orders", "fct_orders_minus_staging"},
    ),
    "assert_churn_identity_holds": ("churn_monthly.marts", {"identity_difference"}),
}


def test_the_singular_tests_left_out_of_daily_are_blocking_checks_of_every_run():
    """What `daily` leaves out is still checked on an incremental day: by a marts suite (run on
    every engine and every run by validate_marts), with severity block, on the same identity."""
    suites = {s.name: s for s in load_suites("marts")}
    for test, (suite, columns) in GX_CHECKS_EVERY_RUN.items():
        checks = suites[suite].body["expectations"]
        blocking = {e["kwargs"].get("column") for e in checks if e["meta"]["severity"] == "block"}
        assert columns <= blocking, f"{test}: {suite} does not block on {columns - blocking}"


def test_an_incremental_day_runs_the_marts_not_null_tests_only_on_spark(duckdb_marts):
    """`daily` (DuckDB, PostgreSQL): the marts' tests but not_null, accepted_values and
    within_bounds, and the singular tests but those a Great Expectations suite repeats
    (GX_CHECKS_EVERY_RUN); `daily_spark`: the same and the marts' not_null
    tests, which Spark's tables do not enforce (ops_warehouse/warehouse/engines.py,
    Engine.daily_selector). The accepted_values and within_bounds tests left out are each
    attached to a mart, whose build runs them (macros/value_checks.sql)."""
    nodes = _manifest_nodes(duckdb_marts)
    marts = {u for u, n in nodes.items() if n["original_file_path"].startswith("models/marts/")}
    tests = {u: n for u, n in nodes.items() if n["resource_type"] == "test"}
    # the marts' tests: every test that reads a mart (dbt's eager indirect selection)
    on_marts = {u for u, n in tests.items() if set(n["depends_on"]["nodes"]) & marts}
    not_null = {
        u for u in on_marts if (tests[u].get("test_metadata") or {}).get("name") == "not_null"
    }
    values = {
        u
        for u, n in tests.items()
        if n["original_file_path"].startswith("models/marts/")
        and (n.get("test_metadata") or {}).get("name") in ("accepted_values", "within_bounds")
    }
    # each is run by its mart's build, which fails on it: none may be a warning only
    assert all(tests[u].get("attached_node") in marts for u in values)
    assert {tests[u]["config"]["severity"].lower() for u in values} == {"error"}
    singular = {u for u, n in tests.items() if not n.get("test_metadata")}
    # the singular tests a blocking Great Expectations marts suite repeats on every run
    by_name = {n["name"]: u for u, n in tests.items()}
    in_gx = {by_name[name] for name in GX_CHECKS_EVERY_RUN}
    assert in_gx <= singular
    daily = _selected_tests(duckdb_marts, "daily")
    on_spark = _selected_tests(duckdb_marts, "daily_spark")
    assert len(not_null) > 100 and len(values) > 30 and singular
    assert daily == ((on_marts - not_null - values) | singular) - in_gx
    assert on_spark == daily | not_null
    assert (DuckDB.daily_selector, Postgres.daily_selector) == ("daily", "daily")
    assert Spark.daily_selector == "daily_spark"
