"""Quality-gate tests build on the marts fixtures of tests/dbt (a small world loaded and
built through dbt); importing them here makes them available to every test of this folder."""

from tests.dbt.conftest import (  # noqa: F401 (pytest fixtures)
    duckdb_marts,
    marts_server,
    marts_world,
    postgres_marts,
)

# PA-TEMP (remove): cached build for iteration
import os  # noqa: E402

if os.environ.get("PA_CACHED"):
    import dataclasses  # noqa: E402
    from pathlib import Path  # noqa: E402

    import pytest  # noqa: E402

    from ops_warehouse.settings import Settings  # noqa: E402

    @pytest.fixture(scope="session")
    def duckdb_marts():  # noqa: F811
        return dataclasses.replace(Settings.from_env(), warehouse_path=Path("/tmp/pa/built.duckdb"))
