"""Reading the published warehouse from BI tools, notebooks and scripts, so that every
publish is seen whatever the tool's connection pooling.

Each DuckDB publish replaces ``OPS_PUBLISHED_PATH`` with a new file (``os.replace``). Within
one process, a ``duckdb.connect(path)`` made while another connection to that path is still
open is handed the database already open: the replaced file. A server that overlaps queries
(Superset's threads, a notebook that keeps a connection) therefore went on answering from an
old publish for as long as its connections overlapped, and a SQLAlchemy pool keeps its
connections on the old file until disposed. Opening the file by ``ATTACH`` from a new
in-memory database reads the file as it is now; everything here opens it that way:

- :func:`connect_published`: one connection (DuckDB: the file attached read-only as
  ``published`` and made the default, so ``marts.kpi_daily`` reads as usual; PostgreSQL: a
  read-only connection to the published database as ``bi_reader``; Spark: a PyHive
  connection to the Thrift server whose default database is ``published``, the views over
  the newest publish, so ``kpi_daily`` reads as usual);
- :func:`published_engine`: a SQLAlchemy engine; on DuckDB each new connection attaches the
  current file, and a pooled connection is replaced at checkout once the file was replaced;
- ``duckdb+published:///<path>`` (:class:`PublishedDialect`, registered when this module is
  imported): the same as a SQLAlchemy URL, for tools configured by URL (Superset, through
  ``bi/superset_config.py``).

A DuckDB reader is locked down after the attach: no file, network or extension access and a
locked configuration, so a SQL console (Superset's SQL Lab) reads the published marts and
audit and nothing else on the machine. On PostgreSQL ``bi_reader`` may read ``marts`` only.

Only ``duckdb``, ``duckdb_engine`` and SQLAlchemy are imported at module level (1.4 or 2.x,
either works): Superset's own environment imports this module for the URL form.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import duckdb_engine
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import registry
from sqlalchemy.engine import make_url

from ops_warehouse.files import attach_read_only, file_identity
from ops_warehouse.settings import Settings, get_settings
from ops_warehouse.warehouse.bi_access import BI_READER_ROLE

ALIAS = "published"  # the attached file's name inside a reader's in-memory database
DIALECT = "duckdb.published"  # SQLAlchemy's name for PublishedDialect: duckdb+published://
# set after the attach: the reader may read the attached file and nothing else
LOCKDOWN = (
    "set enable_external_access = false",
    "set allow_community_extensions = false",
    "set lock_configuration = true",
)


class PublishedFileMissing(FileNotFoundError):
    """No published DuckDB file at the path: nothing has been published yet."""


def attach_published(path: Path | str) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with the file at ``path`` attached read-only as
    ``published``, used as the default database, and locked down."""
    path = Path(path)
    if not path.is_file():
        raise PublishedFileMissing(
            f"no published warehouse at {path}: nothing has been published yet (run the "
            "transform DAG, or make demo) or OPS_PUBLISHED_PATH points elsewhere"
        )
    con = duckdb.connect(":memory:")
    try:
        attach_read_only(con, path, ALIAS)
        con.execute(f"use {ALIAS}")
        for statement in LOCKDOWN:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def connect_published(settings: Settings | None = None, *, role: str | None = BI_READER_ROLE):
    """A read-only DBAPI connection to the published warehouse as it is now.

    DuckDB: :func:`attach_published` of ``OPS_PUBLISHED_PATH`` (``duckdb.DuckDBPyConnection``;
    ``.sql(…).df()`` / ``.pl()`` for pandas and Polars). PostgreSQL: a psycopg connection to
    ``OPS_PUBLISHED_POSTGRES_URL``'s database as ``role`` (password
    ``OPS_BI_READER_PASSWORD``; ``role=None``: the URL's own user), in autocommit with
    read-only transactions, so each query sees the latest publish."""
    settings = settings or get_settings()
    if settings.warehouse == "duckdb":
        return attach_published(settings.published_path)
    if settings.warehouse == "spark":
        return _spark_published(settings)
    import psycopg

    url = make_url(postgres_reader_url(settings, role=role))
    return psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
        options="-c default_transaction_read_only=on",
    )


def postgres_reader_url(settings: Settings, *, role: str | None = BI_READER_ROLE) -> str:
    """The published PostgreSQL database's SQLAlchemy URL (psycopg2 driver, which Superset
    and most SQLAlchemy tools ship), with ``role`` and its password in place of the URL's
    user when ``role`` is given. Holds the password: never log it (``redact`` masks it)."""
    url = make_url(settings.published_postgres_url).set(drivername="postgresql+psycopg2")
    if role is not None:
        url = url.set(username=role, password=settings.bi_reader_password or None)
    return url.render_as_string(hide_password=False)


def _spark_published(settings: Settings):
    """A Thrift connection whose default database holds the views over the newest publish
    (``published``, warehouse/publish.py), its session ours (engines.SPARK_SESSION)."""
    from ops_warehouse.warehouse.engines import PUBLISHED_DB, thrift_connect

    return thrift_connect(settings, database=PUBLISHED_DB)


def published_url(settings: Settings | None = None, *, role: str | None = BI_READER_ROLE) -> str:
    """The SQLAlchemy URL of the published warehouse: ``duckdb+published:///<file>`` on
    DuckDB (this module must be imported where it is used), :func:`postgres_reader_url` on
    PostgreSQL."""
    settings = settings or get_settings()
    if settings.warehouse == "duckdb":
        return f"duckdb+published:///{settings.published_path.resolve()}"
    if settings.warehouse == "spark":
        from ops_warehouse.warehouse.engines import PUBLISHED_DB

        return (
            f"hive://{settings.spark_user}@{settings.spark_thrift_host}:"
            f"{settings.spark_thrift_port}/{PUBLISHED_DB}"
        )
    return postgres_reader_url(settings, role=role)


def published_engine(
    settings: Settings | None = None, *, role: str | None = BI_READER_ROLE, **engine_args: Any
) -> sa.Engine:
    """A SQLAlchemy engine on the published warehouse that sees every publish.

    DuckDB: a pool whose connections each attach the file as it was when they were opened;
    a connection whose file has since been replaced is closed at checkout and a new one
    opened (``poolclass=sqlalchemy.pool.NullPool`` opens one per checkout instead).
    PostgreSQL: ``role`` (``bi_reader``) with ``pool_pre_ping``; read-only transactions."""
    settings = settings or get_settings()
    if settings.warehouse == "spark":
        engine_args.setdefault("creator", lambda: _spark_published(settings))
    if settings.warehouse in ("duckdb", "spark"):
        return sa.create_engine(published_url(settings), **engine_args)
    engine_args.setdefault("pool_pre_ping", True)
    engine_args.setdefault("connect_args", {"options": "-c default_transaction_read_only=on"})
    return sa.create_engine(published_url(settings, role=role), **engine_args)


def published_creator(path: Path | str) -> Callable[[], duckdb_engine.ConnectionWrapper]:
    """For ``sqlalchemy.create_engine("duckdb:///:memory:", creator=…, poolclass=NullPool)``
    in a tool that builds its own engine: every connection attaches the current file."""
    return lambda: duckdb_engine.ConnectionWrapper(attach_published(path))


class PublishedDialect(duckdb_engine.Dialect):
    """duckdb-engine, opening ``duckdb+published:///<path>`` by :func:`attach_published` at
    each new connection, and replacing a pooled connection at checkout once a publish has
    replaced the file it attached."""

    driver = "published"
    supports_statement_cache = duckdb_engine.Dialect.supports_statement_cache

    def create_connect_args(self, url: sa.URL) -> tuple[tuple, dict]:
        if not url.database or url.database == ":memory:":
            raise exc.ArgumentError(
                f"{url.render_as_string(hide_password=True)}: duckdb+published:/// needs the "
                "published file's path, e.g. duckdb+published:////srv/warehouse/published.duckdb"
            )
        return (), {"path": url.database}

    def connect(self, *cargs: Any, path: str, **cparams: Any) -> duckdb_engine.ConnectionWrapper:
        return duckdb_engine.ConnectionWrapper(attach_published(path))

    @classmethod
    def get_pool_class(cls, url: sa.URL) -> type[sa.pool.Pool]:
        return sa.pool.QueuePool

    @classmethod
    def engine_created(cls, engine: sa.Engine) -> None:
        path = Path(engine.url.database)

        # identity read before the attach: a publish in between costs one needless reconnect,
        # never a stale connection
        @event.listens_for(engine, "connect")
        def remember_file(dbapi_connection, record) -> None:
            record.info["ops_published_identity"] = _identity_or_none(path)

        @event.listens_for(engine, "checkout")
        def refuse_replaced_file(dbapi_connection, record, proxy) -> None:
            if record.info.get("ops_published_identity") != _identity_or_none(path):
                raise exc.DisconnectionError(f"{path} was replaced by a publish: reconnecting")


def _identity_or_none(path: Path) -> tuple[int, int, int] | None:
    try:
        return file_identity(path)
    except FileNotFoundError:
        return None


registry.register(DIALECT, __name__, PublishedDialect.__name__)
