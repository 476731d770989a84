"""The same models build on DuckDB and PostgreSQL and give identical marts on the same data."""

from __future__ import annotations

import pytest

from tests.helpers import MART_TABLES, frames_differ, read_table


@pytest.mark.parametrize("table", MART_TABLES)
def test_duckdb_and_postgres_marts_are_identical(duckdb_marts, postgres_marts, table):
    duck = read_table(duckdb_marts, "marts", table)
    pg = read_table(postgres_marts, "marts", table)
    assert len(duck) > 0, f"marts.{table} is empty on the demo world"
    difference = frames_differ(duck, pg)
    assert difference is None, f"marts.{table}: {difference}"
