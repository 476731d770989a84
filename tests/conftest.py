"""Shared fixtures: a small demo world, its API server, and settings pointing at both."""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import date
from pathlib import Path

import psycopg
import pytest

from ops_warehouse.pipeline.loading import load_source
from ops_warehouse.pipeline.transform import dbt_invoke
from ops_warehouse.settings import Settings
from tests.helpers import day_window

UNTIL = date(2026, 11, 22)

# The longest files start first, so that `make test` (`pytest -n 2 --dist loadfile
# --no-loadscope-reorder`) runs them side by side from the start instead of leaving one of
# them alone at the end: xdist hands the first file to one worker, the second to the other.
LONGEST_FIRST = (
    "tests/spark/test_cluster.py",
    "tests/production/test_celery_e2e.py",
    "tests/e2e/test_demo_e2e.py",
    "tests/dbt/test_incremental_equivalence.py",
    "tests/bench/test_bench.py",
    "tests/bi/test_superset.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # a test that needs the local Spark cluster runs with the other deployments' tests
    # (`make test-deploy`), not in `make test`
    for item in items:
        if "spark_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.deploy)

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


SMALL_SCALE = 0.03
HISTORY_DAYS = 120


@pytest.fixture(scope="session")
def world_template(tmp_path_factory) -> Path:
    """A small demo world, generated once per test session; copy it before changing it."""
    from ops_demo import world

    path = tmp_path_factory.mktemp("world_template")
    world.generate(path, seed=7, scale=SMALL_SCALE, until=UNTIL, history_days=HISTORY_DAYS)
    return path


@pytest.fixture
def world_dir(world_template, tmp_path) -> Path:
    path = tmp_path / "world"
    shutil.copytree(world_template, path)
    return path


@pytest.fixture
def server(world_dir):
    from ops_demo.server import DemoServer

    with DemoServer(world_dir, marketing_token="m-token", support_token="s-token") as srv:
        yield srv


def make_settings(home: Path, world_dir: Path, api_url: str, **overrides) -> Settings:
    base = Settings.from_env()
    values = dict(
        home=home,
        warehouse_path=home / "warehouse" / "working.duckdb",
        published_path=home / "warehouse" / "published.duckdb",
        shop_db_url=f"sqlite:///{world_dir / 'shop.sqlite'}",
        marketing_api_url=api_url,
        marketing_api_token="m-token",
        support_api_url=api_url,
        support_api_token="s-token",
        landing_dir=world_dir / "landing",
        demo_dir=world_dir,
        dlt_dir=home / "dlt",
        reports_dir=home / "reports",
        http_timeout_s=2.0,
        http_max_attempts=10,
        http_backoff_max_s=0.5,
        page_size=500,
    )
    values.update(overrides)
    return dataclasses.replace(base, **values)


@pytest.fixture
def settings(tmp_path, world_dir, server) -> Settings:
    return make_settings(tmp_path / "home", world_dir, server.url)


# --- a small world loaded and built through dbt, on DuckDB and on PostgreSQL --------------
MARTS_UNTIL = date(2026, 11, 22)
MARTS_SCALE = 0.03
MARTS_HISTORY_DAYS = 400


def load_and_build(settings: Settings, day: date, dbt_args: list[str] | None = None) -> None:
    for source in ("marketing", "sales", "support"):
        load_source(source, day_window(day), settings=settings, run_id=f"test__{day}")
    dbt_invoke(dbt_args or ["build"], settings=settings, as_of=day)


def scratch_pg_database(name: str) -> str:
    admin = os.environ.get("OPS_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'drop database if exists "{name}" with (force)')
        con.execute(f'create database "{name}"')
    return admin.rsplit("/", 1)[0] + f"/{name}"


def postgres_settings(
    home: Path, world_dir: Path, api_url: str, name: str, **overrides
) -> Settings:
    """Settings of a warehouse on a new scratch PostgreSQL database ``name`` (drop it with
    drop_pg_database)."""
    return dataclasses.replace(
        make_settings(home, world_dir, api_url),
        warehouse="postgres",
        dbt_target="postgres",
        postgres_url=scratch_pg_database(name),
        **overrides,
    )


def drop_pg_database(name: str) -> None:
    admin = os.environ.get("OPS_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def marts_world(tmp_path_factory) -> Path:
    from ops_demo import world

    path = tmp_path_factory.mktemp("marts_world")
    world.generate(
        path, seed=11, scale=MARTS_SCALE, until=MARTS_UNTIL, history_days=MARTS_HISTORY_DAYS
    )
    return path


@pytest.fixture(scope="session")
def marts_server(marts_world):
    from ops_demo.server import DemoServer

    with DemoServer(marts_world, marketing_token="m-token", support_token="s-token") as srv:
        yield srv


@pytest.fixture(scope="session")
def duckdb_marts(tmp_path_factory, marts_world, marts_server) -> Settings:
    """The small world loaded and built (`dbt build`, tests included) on DuckDB."""
    home = tmp_path_factory.mktemp("duckdb_marts")
    settings = make_settings(home, marts_world, marts_server.url)
    load_and_build(settings, MARTS_UNTIL)
    return settings


@pytest.fixture(scope="session")
def postgres_marts(tmp_path_factory, marts_world, marts_server) -> Settings:
    """The same world loaded and built on PostgreSQL (a scratch database)."""
    name = f"ops_test_{os.getpid()}"
    home = tmp_path_factory.mktemp("postgres_marts")
    settings = postgres_settings(home, marts_world, marts_server.url, name)
    load_and_build(settings, MARTS_UNTIL)
    yield settings
    drop_pg_database(name)
