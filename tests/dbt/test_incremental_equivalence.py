"""Ten consecutive incremental daily runs give exactly the marts of one full refresh."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.transform import dbt_invoke
from tests.conftest import make_settings
from tests.dbt.conftest import MARTS_HISTORY_DAYS, MARTS_UNTIL
from tests.helpers import MART_TABLES, day_window, frames_differ, read_table

DAYS = 10
# dbt's data and unit tests run in the other dbt test modules; here only the models matter.
NO_TESTS = ["--exclude-resource-type", "test", "unit_test"]


def _load(settings, day):
    for source in ("marketing", "sales", "support"):
        load_source(source, day_window(day), settings=settings, run_id=f"test__{day}")


@pytest.fixture(scope="module")
def incremental_and_full(tmp_path_factory):
    from ops_demo import world
    from ops_demo.server import DemoServer

    root = tmp_path_factory.mktemp("incremental")
    world_dir = root / "world"
    first_day = MARTS_UNTIL - timedelta(days=DAYS)
    world.generate(
        world_dir, seed=11, scale=0.03, until=first_day, history_days=MARTS_HISTORY_DAYS - DAYS
    )
    with DemoServer(world_dir, marketing_token="m-token", support_token="s-token") as server:
        inc = make_settings(root / "inc", world_dir, server.url)
        _load(inc, first_day)
        dbt_invoke(["build", *NO_TESTS], settings=inc, as_of=first_day)
        for offset in range(1, DAYS + 1):
            day = first_day + timedelta(days=offset)
            world.advance(world_dir, days=1)
            _load(inc, day)
            dbt_invoke(["run"], settings=inc, as_of=day)
        full = make_settings(root / "full", world_dir, server.url)
        _load(full, MARTS_UNTIL)
        dbt_invoke(["build", "--full-refresh", *NO_TESTS], settings=full, as_of=MARTS_UNTIL)
    return inc, full


@pytest.mark.parametrize("table", MART_TABLES)
def test_incremental_runs_equal_full_refresh(incremental_and_full, table):
    inc, full = incremental_and_full
    a, b = read_table(inc, "marts", table), read_table(full, "marts", table)
    assert len(b) > 0
    difference = frames_differ(a, b)
    assert difference is None, f"marts.{table}: {difference}"
