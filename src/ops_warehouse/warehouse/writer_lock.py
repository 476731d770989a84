"""One writer of the working warehouse at a time, also outside Airflow.

Airflow's tasks take turns through the one-slot ``warehouse_writer`` pool. The commands that
write without Airflow (``ops load``, ``ops transform``, ``ops replay``, ``ops-demo``) hold this
lock for their whole run, so a second one stops at once with an error naming the first (pid,
host, command, start) instead of a DuckDB lock error half-way or writes interleaved with it.

- DuckDB: ``flock`` on ``<working file>.writer.lock`` beside the working file; the holder
  writes its description into that file.
- PostgreSQL: a session-level advisory lock on the working database, held by a connection
  kept open for the run; the holder writes its description into ``audit.writer_lock``.

Either lock dies with its holder: the kernel drops a dead process's ``flock``, the server a
closed session's advisory locks, so a holder killed with SIGKILL leaves nothing to clear by
hand. The lock file is never deleted: deleting it would let two processes lock two files.
Within one process the lock is reentrant (a command that runs another command's function).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.settings import Settings

# Key of the PostgreSQL advisory lock ("opsw"); advisory locks are per database, so one key
# serves every working database of a server.
ADVISORY_KEY = 0x6F707377
HOLDER_TABLE = "audit.writer_lock"
# A holder describes itself right after taking the lock: how long to wait for that.
DESCRIPTION_WAIT_S = 1.0

# Locks this process holds: key -> how many nested holds.
_held: dict[str, int] = {}


class WarehouseBusy(OpsWarehouseError):
    """Another process is writing the working warehouse (the message names it)."""


@dataclass(frozen=True)
class Holder:
    """Who holds the writer lock, as the second writer reports it."""

    pid: int
    host: str
    command: str
    started_at: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, `{self.command}`, started {self.started_at}"


def lock_path(settings: Settings) -> Path:
    return settings.warehouse_path.with_name(settings.warehouse_path.name + ".writer.lock")


@contextmanager
def writer_lock(settings: Settings) -> Iterator[None]:
    """Hold the working warehouse's writer lock for the block, or raise ``WarehouseBusy``
    at once naming the process that holds it."""
    key = _key(settings)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    take = _pg_lock if settings.warehouse == "postgres" else _file_lock
    with take(settings):
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]


def _key(settings: Settings) -> str:
    if settings.warehouse == "postgres":
        from sqlalchemy.engine import make_url

        url = make_url(settings.postgres_url)
        return f"postgres://{url.host}:{url.port or 5432}/{url.database}"
    return str(lock_path(settings).resolve())


def _busy(settings: Settings, holder: str) -> WarehouseBusy:
    from ops_warehouse.warehouse.databases import working_location

    return WarehouseBusy(
        f"another process is writing the working warehouse {working_location(settings)}: "
        f"{holder}. Wait for it to finish (or stop it), then run this again"
    )


# --- DuckDB: flock on a file beside the working file -------------------------------------


@contextmanager
def _file_lock(settings: Settings) -> Iterator[None]:
    import fcntl

    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not inherited by child processes (dbt, Airflow, the demo server): the lock must end
    # with this process, not live on in a child it started.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(settings, _file_holder(path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(Holder.this_process())).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a description left behind would name a finished process
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _file_holder(path: Path) -> str:
    deadline = time.monotonic() + DESCRIPTION_WAIT_S
    while True:
        try:
            return Holder(**json.loads(path.read_text())).describe()
        except (OSError, ValueError, TypeError):
            if time.monotonic() > deadline:
                return f"a process that has not described itself in {path}"
            time.sleep(0.05)


# --- PostgreSQL: a session-level advisory lock on the working database -------------------


@contextmanager
def _pg_lock(settings: Settings) -> Iterator[None]:
    import psycopg

    from ops_warehouse.warehouse.engines import pg_connect

    holder = Holder.this_process()
    with pg_connect(
        settings.postgres_url,
        autocommit=True,
        # what a database administrator sees in pg_stat_activity
        application_name=f"ops writer lock (pid {holder.pid})",
    ) as con:
        if not con.execute("select pg_try_advisory_lock(%s)", [ADVISORY_KEY]).fetchone()[0]:
            raise _busy(settings, _pg_holder(con))
        with con.transaction():
            con.execute("create schema if not exists audit")
            con.execute(
                f"""
                create table if not exists {HOLDER_TABLE} (
                    backend_pid integer not null,
                    pid integer not null,
                    host varchar not null,
                    command varchar not null,
                    started_at varchar not null
                )
                """
            )
            con.execute(f"delete from {HOLDER_TABLE}")
            con.execute(
                f"insert into {HOLDER_TABLE} values (pg_backend_pid(), %s, %s, %s, %s)",
                [holder.pid, holder.host, holder.command, holder.started_at],
            )
        try:
            yield
        finally:
            # Closing the session releases the lock too; deleting the row first keeps the
            # description from naming a finished process.
            try:
                con.execute(f"delete from {HOLDER_TABLE}")
                con.execute("select pg_advisory_unlock(%s)", [ADVISORY_KEY])
            except psycopg.Error:
                pass  # the session is gone, and its lock with it


def _pg_holder(con) -> str:
    """The holder's description, matched to the session that holds the lock now (the table
    keeps the last holder's row until the next one replaces it)."""
    from psycopg import errors

    lock_holder = """
        select l.pid from pg_locks l
        where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = %s
          and l.objsubid = 1
          and l.database = (select oid from pg_database where datname = current_database())
    """
    deadline = time.monotonic() + DESCRIPTION_WAIT_S
    while True:
        try:
            row = con.execute(
                f"select w.pid, w.host, w.command, w.started_at from {HOLDER_TABLE} w "
                f"where w.backend_pid = ({lock_holder})",
                [ADVISORY_KEY],
            ).fetchone()
        except errors.UndefinedTable:
            row = None
        if row:
            return Holder(*row).describe()
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    session = con.execute(
        "select a.pid, a.application_name, a.client_addr, a.backend_start "
        f"from pg_stat_activity a where a.pid = ({lock_holder})",
        [ADVISORY_KEY],
    ).fetchone()
    if session is None:
        return "a session that has since ended (run this again)"
    backend, app, client, since = session
    # Columns of another user's session may be hidden (NULL) from this one.
    return (
        f"server session {backend} ({app or 'no application name'}) from "
        f"{client or 'an unknown or local client'}"
        + (f", connected since {since.isoformat(timespec='seconds')}" if since else "")
    )
