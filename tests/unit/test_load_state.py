"""Load state lives with the data: a lost warehouse or a stale local dlt folder never skips rows."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import timedelta

import pytest

from ops_warehouse.pipeline.loading import load_source
from tests.conftest import UNTIL, drop_pg_database, make_settings, scratch_pg_database
from tests.helpers import day_window, raw_snapshot, source_snapshot

SOURCES = ("marketing", "sales", "support")


def load_all(settings, day=UNTIL) -> None:
    for source in SOURCES:
        load_source(source, day_window(day), settings=settings, run_id=f"test__{day}")


def assert_raw_equals_source(settings, world_dir) -> None:
    source, raw = source_snapshot(world_dir), raw_snapshot(settings)
    for name, rows in source.items():
        assert raw.get(name) == rows, f"raw {name} differs from the source"


def test_lost_warehouse_with_local_state_kept_reloads_everything(settings, world_dir, server):
    from ops_demo import world

    load_all(settings)
    world.advance(world_dir, days=1)
    load_all(settings, UNTIL + timedelta(days=1))
    settings.warehouse_path.unlink()  # the disk with the warehouse is lost; OPS_HOME is kept
    assert (settings.dlt_dir).exists()
    load_all(settings, UNTIL + timedelta(days=1))
    assert_raw_equals_source(settings, world_dir)


def test_workers_with_separate_local_folders_alternate(tmp_path, world_dir, server):
    from ops_demo import world

    home = tmp_path / "home"
    worker_a = make_settings(home, world_dir, server.url, dlt_dir=tmp_path / "a_dlt")
    worker_b = dataclasses.replace(worker_a, dlt_dir=tmp_path / "b_dlt")
    load_all(worker_b)  # b's local state is from the first day and stays so for a while
    day = UNTIL
    for worker in (worker_a, worker_a, worker_b, worker_a, worker_b):
        world.advance(world_dir, days=1)
        day += timedelta(days=1)
        load_all(worker, day)
        assert_raw_equals_source(worker, world_dir)


@pytest.mark.parametrize("engine", ["postgres"])
def test_new_empty_postgres_database_with_local_state_kept(tmp_path, world_dir, server, engine):
    first, second = f"ops_state_a_{id(tmp_path) % 10**6}", f"ops_state_b_{id(tmp_path) % 10**6}"
    base = make_settings(tmp_path / "home", world_dir, server.url)
    try:
        settings = dataclasses.replace(
            base,
            warehouse="postgres",
            dbt_target="postgres",
            postgres_url=scratch_pg_database(first),
        )
        load_all(settings)
        # the same OPS_HOME, pointed at a new, empty database
        settings = dataclasses.replace(settings, postgres_url=scratch_pg_database(second))
        load_all(settings)
        source, raw = source_snapshot(world_dir), raw_snapshot(settings)
        for name, rows in source.items():
            assert raw.get(name) == rows, f"raw {name} differs from the source"
    finally:
        drop_pg_database(first)
        drop_pg_database(second)
        shutil.rmtree(tmp_path / "home", ignore_errors=True)
