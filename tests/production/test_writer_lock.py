"""One writer of the working warehouse outside Airflow: a second `ops` command that writes
stops at once naming the first, and a holder killed with SIGKILL leaves no lock behind."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.writer_lock import (
    ADVISORY_KEY,
    HOLDER_TABLE,
    WarehouseBusy,
    lock_path,
    writer_lock,
)
from tests.conftest import drop_pg_database, scratch_pg_database

OPS = str(Path(sys.executable).with_name("ops"))
OPS_DEMO = str(Path(sys.executable).with_name("ops-demo"))


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request, tmp_path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings of an empty working warehouse on one engine, and the environment that points
    an `ops` command at it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPS_", "AIRFLOW"))}
    env.update(OPS_HOME=str(tmp_path / "home"), OPS_WAREHOUSE=request.param, COLUMNS="1000")
    settings = dataclasses.replace(
        Settings.from_env(),
        home=tmp_path / "home",
        warehouse=request.param,
        warehouse_path=tmp_path / "home" / "warehouse" / "working.duckdb",
    )
    if request.param == "duckdb":
        yield settings, env
        return
    name = f"ops_test_lock_{uuid.uuid4().hex[:8]}"
    url = scratch_pg_database(name)
    env["OPS_POSTGRES_URL"] = url
    yield dataclasses.replace(settings, postgres_url=url), env
    drop_pg_database(name)


def holder_pid(settings: Settings) -> int | None:
    """The pid the lock's holder wrote down, or None while nobody holds it."""
    if settings.warehouse == "duckdb":
        text = lock_path(settings).read_text() if lock_path(settings).exists() else ""
        return json.loads(text)["pid"] if text else None
    with psycopg.connect(settings.postgres_url) as con:
        held = con.execute(
            "select 1 from pg_locks where locktype = 'advisory' and granted and objid = %s",
            [ADVISORY_KEY],
        ).fetchone()
        if not held:
            return None
        try:
            row = con.execute(f"select pid from {HOLDER_TABLE}").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        return row[0] if row else None


def wait_until_held_by(settings: Settings, pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while holder_pid(settings) != pid:
        assert time.monotonic() < deadline, f"pid {pid} never took the writer lock"
        time.sleep(0.1)


def ops(env: dict[str, str], *args: str) -> tuple[int, str, float]:
    """Run `ops <args>`, or the demo's own command for `demo` (`ops-demo`)."""
    command = [OPS_DEMO, *args[1:]] if args[0] == "demo" else [OPS, *args]
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    return (
        result.returncode,
        " ".join((result.stdout + result.stderr).split()),
        time.monotonic() - started,
    )


def test_a_second_writer_fails_at_once_naming_the_first_and_sigkill_frees_the_lock(engine):
    settings, env = engine
    # The first writer: a real `ops transform`, frozen (SIGSTOP) once it holds the lock so
    # that it is still running whatever the second command's timing.
    first = subprocess.Popen(
        [OPS, "transform"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_held_by(settings, first.pid)
        os.killpg(first.pid, signal.SIGSTOP)
        for second in (["load", "marketing"], ["transform"], ["demo"], ["replay"]):
            status, out, seconds = ops(env, *second)
            assert status == 1, out
            assert seconds < 10, f"`ops {' '.join(second)}` took {seconds:.1f} s to give up"
            assert "another process is writing the working warehouse" in out
            assert f"pid {first.pid} on " in out and "`ops transform`" in out
            assert "started 20" in out  # its start time
            assert "Traceback" not in out
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()

    # Killed mid-run: the kernel (flock) or the server (the session ended) freed the lock.
    deadline = time.monotonic() + 10
    while True:
        try:
            with writer_lock(settings):
                break
        except WarehouseBusy:
            assert time.monotonic() < deadline, "the killed holder's lock is still held"
            time.sleep(0.1)


def test_the_lock_is_reentrant_within_a_process_and_exclusive_across_processes(engine):
    settings, _ = engine
    with writer_lock(settings):
        with writer_lock(settings):  # e.g. a command that calls another command's function
            assert holder_pid(settings) == os.getpid()
        assert holder_pid(settings) == os.getpid()  # still held by the outer block
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, dataclasses, pathlib\n"
                "from ops_warehouse.settings import Settings\n"
                "from ops_warehouse.warehouse.writer_lock import writer_lock\n"
                "s = dataclasses.replace(Settings.from_env(), warehouse=sys.argv[1], "
                "postgres_url=sys.argv[2], warehouse_path=pathlib.Path(sys.argv[3]))\n"
                "with writer_lock(s): pass\n",
                settings.warehouse,
                settings.postgres_url,
                str(settings.warehouse_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode == 1
        assert "WarehouseBusy: another process is writing the working warehouse" in other.stderr
        assert f"pid {os.getpid()} on " in other.stderr
    assert holder_pid(settings) is None  # released, and its description with it
