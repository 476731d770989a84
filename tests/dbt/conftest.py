"""Marts fixtures live in tests/conftest.py (shared with the quality-gate tests); re-exported
names keep `from tests.dbt.conftest import …` working."""

from tests.conftest import (  # noqa: F401
    MARTS_HISTORY_DAYS,
    MARTS_SCALE,
    MARTS_UNTIL,
    drop_pg_database,
    load_and_build,
    scratch_pg_database,
)
