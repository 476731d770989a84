"""A missing PostgreSQL working database: created when the user may, else a clear error at
once (no Airflow retry) naming OPS_POSTGRES_URL and the command that fixes it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ops_warehouse import settings as settings_module
from ops_warehouse.warehouse.databases import DatabaseMissing, ensure_working_database
from tests.conftest import UNTIL, drop_pg_database

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_exists(name: str) -> bool:
    with psycopg.connect(ADMIN) as con:
        return bool(con.execute("select 1 from pg_database where datname = %s", [name]).fetchone())


@pytest.fixture
def missing_database():
    """The name of a database that does not exist (dropped afterwards if a test made it)."""
    name = f"ops_test_missing_{uuid.uuid4().hex[:8]}"
    yield name
    drop_pg_database(name)


@pytest.fixture
def role_without_createdb():
    """A login role that may not create databases (trust authentication: no password)."""
    role = f"ops_test_nocreatedb_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(f'create role "{role}" login nocreatedb')
    yield role
    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(f'drop role if exists "{role}"')


def test_a_missing_database_the_user_may_create_is_created_and_the_load_runs(
    settings, missing_database, monkeypatch
):
    from ops_warehouse.airflow.tasks import run_load

    pg = dataclasses.replace(
        settings,
        warehouse="postgres",
        dbt_target="postgres",
        postgres_url=f"postgresql://postgres@127.0.0.1:5432/{missing_database}",
    )
    monkeypatch.setattr(settings_module, "get_settings", lambda: pg)
    start = datetime(UNTIL.year, UNTIL.month, UNTIL.day, tzinfo=UTC)

    summary = run_load("marketing", start, start + timedelta(days=1), "test__create")

    assert database_exists(missing_database)
    assert sum(e["rows_loaded"] for e in summary["entities"].values()) > 0
    assert ensure_working_database(pg) is False  # the next run finds it


def test_a_database_the_user_may_not_create_fails_at_once_without_retry(
    tmp_path, missing_database, role_without_createdb, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    from ops_warehouse.airflow.tasks import run_load, run_validation

    url = f"postgresql://{role_without_createdb}@127.0.0.1:5432/{missing_database}"
    pg = dataclasses.replace(
        settings_module.Settings.from_env(), home=tmp_path, warehouse="postgres", postgres_url=url
    )
    with pytest.raises(DatabaseMissing) as plain:
        ensure_working_database(pg)
    message = str(plain.value)
    assert "OPS_POSTGRES_URL" in message
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres -O {role_without_createdb} " in message
    assert missing_database in message

    # In Airflow: AirflowFailException fails the task without its retries.
    monkeypatch.setattr(settings_module, "get_settings", lambda: pg)
    start = datetime(UNTIL.year, UNTIL.month, UNTIL.day, tzinfo=UTC)
    for task in (
        lambda: run_load("marketing", start, start + timedelta(days=1), "test__refused"),
        lambda: run_validation(["raw"], {}),
    ):
        started = time.monotonic()
        with pytest.raises(AirflowFailException, match="OPS_POSTGRES_URL"):
            task()
        assert time.monotonic() - started < 10

    # On the command line: exit status 1 and the same advice, within seconds.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    env.update(
        OPS_HOME=str(tmp_path), OPS_WAREHOUSE="postgres", OPS_POSTGRES_URL=url, COLUMNS="1000"
    )
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ops")), "load", "marketing"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.monotonic() - started
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, out
    assert seconds < 10, f"took {seconds:.1f} s"
    assert "OPS_POSTGRES_URL" in out and "createdb -h 127.0.0.1" in out
    assert "Traceback" not in out
    assert not database_exists(missing_database)
