"""Shared fixtures: a small demo world, its API server, and settings pointing at both."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest

from ops_warehouse.settings import Settings

UNTIL = date(2026, 11, 22)
SMALL_SCALE = 0.03
HISTORY_DAYS = 120


@pytest.fixture(scope="session")
def world_template(tmp_path_factory) -> Path:
    """A small demo world, generated once per test session; copy it before changing it."""
    from ops_warehouse.demo import world

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
    from ops_warehouse.demo.server import DemoServer

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
