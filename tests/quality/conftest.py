"""Quality-gate tests build on the marts fixtures of tests/dbt (a small world loaded and
built through dbt); importing them here makes them available to every test of this folder."""

from tests.dbt.conftest import (  # noqa: F401 (pytest fixtures)
    duckdb_marts,
    marts_server,
    marts_world,
    postgres_marts,
)
