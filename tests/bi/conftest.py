"""A private copy of the built marts warehouse, and publishes of it that readers can tell
apart: each publish carries its generation number in the newest ``kpi_daily.orders``."""

from __future__ import annotations

import duckdb
import pytest

from ops_warehouse.pipeline import audit
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse import publish
from tests.quality.wap import run, working_copy

# what a reader asks to learn which publish it is reading
GENERATION_SQL = "select orders from marts.kpi_daily order by date_day desc limit 1"


@pytest.fixture
def bi_settings(duckdb_marts, tmp_path) -> Settings:
    return working_copy(duckdb_marts, tmp_path / "home")


def base_orders(settings: Settings) -> int:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(GENERATION_SQL).fetchone()[0]


def publish_generation(settings: Settings, base: int, generation: int) -> None:
    """Publish the working copy with the newest day's orders set to ``base + generation``."""
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            "update marts.kpi_daily set orders = ? "
            "where date_day = (select max(date_day) from marts.kpi_daily)",
            [base + generation],
        )
    this = run(f"manual__generation_{generation}")
    audit.record_run_start(settings, this)
    publish.publish(settings, this)
