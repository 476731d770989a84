"""What differs between the warehouse engines, behind one interface.

``engine(settings)`` returns the adapter of ``OPS_WAREHOUSE``: DuckDB (a file),
PostgreSQL (a server) or Spark (landing in DuckDB, raw as Parquet in the lake, models and
published marts in Spark through its Thrift server: see :class:`Spark`). The pipeline, the reports and the Airflow tasks ask it for
connections, for dlt's destination and for the few SQL fragments the two dialects spell
differently; only modules of this package branch on the engine.

Every connection is a :class:`Connection`: ``?`` placeholders on both engines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.files import attach_read_only, sql_literal
from ops_warehouse.pipeline.transform import MARTS
from ops_warehouse.settings import Settings

# The audit trail's schema (pipeline/audit.py), in the working and the published warehouse.
AUDIT_SCHEMA = "audit"
# DuckDB files this process holds open for a block (``DuckDB.held``): path -> connection.
_HELD: dict[str, Any] = {}


def configure_duckdb(con: Any, settings: Settings) -> None:
    """The settings every DuckDB database of ours works with, as dbt's profile gives its own:
    timestamps read in UTC whatever the host's zone, and ``OPS_DUCKDB_MEMORY_LIMIT`` (a
    checked size: no quote in it). Global: a database's cursors and its other connections
    in this process share them."""
    con.execute("set global TimeZone = 'UTC'")
    con.execute(f"set global memory_limit = '{settings.duckdb_memory_limit}'")


class PublishedMissing(Exception):  # noqa: N818 - a state, read as "published: missing"
    """Nothing has been published yet: the published warehouse does not exist."""


class Connection:
    """One connection to a warehouse (``con``: DuckDB's or psycopg's); ``?`` placeholders."""

    def __init__(self, con: Any, engine: str) -> None:
        self.con = con
        self.engine = engine

    # the type of a double-precision float, and of an instant, as the engine spells them
    double_type = "double precision"
    instant_type = "timestamp with time zone"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.engine == "postgres" else sql

    def local_date(self, expression: str, tz: str) -> str:
        """SQL for the date of a UTC timestamp in the time zone ``tz`` (an IANA name, checked
        by the settings)."""
        return f"cast(({expression} at time zone '{tz}') as date)"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the cursor."""
        if self.engine == "postgres" and not params:
            return self.con.execute(sql)  # no placeholders: a literal % stays a %
        return self.con.execute(self._sql(sql), list(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [list(r) for r in rows]
        if not rows:
            return
        if self.engine == "postgres":
            with self.con.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.con.executemany(sql, rows)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of one query as dicts by column name."""
        cursor = self.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one ``insert``/``update``/``delete``; returns the rows it changed."""
        cursor = self.execute(sql, params)
        if self.engine == "postgres":
            return cursor.rowcount
        return cursor.fetchone()[0]

    def frame(self, sql: str):
        """A query's result as a pandas DataFrame: decimals as doubles (the exact sums are
        computed in the query; Python Decimals are ~10x slower to compare), dates as dates."""
        if self.engine == "duckdb":
            relation = self.con.sql(sql)
            columns = []
            for name, type_ in zip(relation.columns, relation.dtypes, strict=True):
                quoted = '"' + name.replace('"', '""') + '"'
                is_decimal = str(type_).upper().startswith("DECIMAL")
                columns.append(f"cast({quoted} as double) as {quoted}" if is_decimal else quoted)
            sql = f"select {', '.join(columns)} from (\n{sql}\n) as batch"
            return self.con.sql(sql).to_arrow_table().to_pandas()
        from decimal import Decimal

        import pandas as pd

        cursor = self.execute(sql)
        names = [d[0] for d in cursor.description]
        frame = pd.DataFrame.from_records(cursor.fetchall(), columns=names)
        for name in names:
            if frame[name].map(lambda v: isinstance(v, Decimal)).any():
                frame[name] = frame[name].astype(float)
        return frame

    def tables(self, schema: str) -> list[str]:
        """Base tables and views of one schema, by name."""
        return [
            r[0]
            for r in self.fetch(
                "select table_name from information_schema.tables where table_schema = ? "
                "order by table_name",
                [schema],
            )
        ]

    def columns(self, schema: str, table: str) -> list[str]:
        """A table's column names in order; empty when it does not exist."""
        return [
            r[0]
            for r in self.fetch(
                "select column_name from information_schema.columns where table_schema = ? "
                "and table_name = ? order by ordinal_position",
                [schema, table],
            )
        ]

    def has_table(self, schema: str, table: str) -> bool:
        return bool(
            self.fetch(
                "select count(*) from information_schema.tables where table_schema = ? "
                "and table_name = ?",
                [schema, table],
            )[0][0]
        )


def pg_connect(url: str, **kwargs):
    """A psycopg connection from a SQLAlchemy-style URL (``postgresql+psycopg://…``)."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg.connect(
        host=u.host,
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=u.database,
        **kwargs,
    )


def _pg_reader(url: str):
    """A read-only psycopg connection in autocommit: each query sees the latest commit, and
    one failing query (a table not there yet) does not abort the ones after it."""
    con = pg_connect(url, autocommit=True)
    con.execute("set default_transaction_read_only = on")
    return con


class Engine:
    """The adapter's interface; one subclass per engine."""

    name: ClassVar[str]
    # dbt's incremental models take the day's changed keys here (pipeline/run_mode.py); where
    # tables can only be written whole (Spark's Parquet tables) they are tables, rebuilt by
    # every run, and only the tests and checks follow the day's mode
    builds_incrementally: ClassVar[bool] = True
    # the dbt selector of an incremental day (dbt_project/selectors.yml): `daily` leaves the
    # marts' not_null tests to the tables' NOT NULL constraints, which this engine enforces
    daily_selector: ClassVar[str] = "daily"
    # a gate's suites may run in several processes at once (quality.gx_runner.run_layers):
    # each opens its own connections and GX works out its checks in Python
    checks_in_processes: ClassVar[bool] = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def working_exists(self) -> bool:
        """Whether the working warehouse can hold data already (a lost DuckDB file cannot)."""
        raise NotImplementedError

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the working warehouse open in this process for the block, where opening it
        costs (DuckDB). Only a writer (the pool slot, or the writer lock) may hold it."""
        yield

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A read-write transaction on the working warehouse: committed on success, else
        rolled back. Only a writer (the pool slot, or the writer lock) may open one."""
        raise NotImplementedError
        yield

    @contextmanager
    def read_only(self) -> Iterator[Connection]:
        """A read-only connection to the working warehouse, closed on exit."""
        raise NotImplementedError
        yield

    @contextmanager
    def published(self) -> Iterator[Connection]:
        """A read-only connection to the published warehouse; :class:`PublishedMissing`
        when nothing has been published yet."""
        raise NotImplementedError
        yield

    @contextmanager
    def validation_reader(self) -> Iterator[Connection]:
        """The connection a validation run reads through (see :meth:`gx_datasource`)."""
        with self.read_only() as con:
            yield con

    @contextmanager
    def models_reader(self) -> Iterator[Connection]:
        """A read-only connection to where dbt's models are (the working warehouse)."""
        with self.read_only() as con:
            yield con

    @contextmanager
    def layer_reader(self, layer: str, working: Connection) -> Iterator[Connection]:
        """The connection a layer's checks read through, given the validation reader of the
        working warehouse: that one, where every layer lives in it."""
        yield working

    def gx_datasource(self, context: Any, name: str, con: Connection) -> Any:
        """Great Expectations' SQL datasource over the warehouse ``con`` reads."""
        raise NotImplementedError

    def prepare_build(self) -> None:
        """Make the raw tables readable where dbt builds (nothing to do where it builds in the
        working warehouse itself)."""

    def index_load_marks(self, schema: str, tables: Iterable[str]) -> None:
        """Make ``_loaded_at`` of the raw tables a load wrote quick to filter on: an
        incremental day's checks and staging models read only the rows past a mark. Nothing
        to do on DuckDB, whose raw tables grow load by load (the
        min/max of ``_loaded_at`` it keeps per row group skips older rows), nor on Spark, whose
        landing is a DuckDB file."""

    def dlt_destination(self) -> Any:
        """dlt's destination for the working warehouse's raw schemas."""
        raise NotImplementedError

    def json_object(self, fields: dict[str, str]) -> str:
        """SQL for a JSON text object of ``{name: SQL expression}``."""
        raise NotImplementedError

    def json_array(self, expressions: Sequence[str]) -> str:
        """SQL for a JSON text array of SQL expressions."""
        raise NotImplementedError


class DuckDB(Engine):
    name = "duckdb"

    def working_exists(self) -> bool:
        return self.settings.warehouse_path.exists()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Each ``duckdb.connect`` of the file reads its catalog again (25-45 ms at scale
        10) and the last one closed checkpoints it, and an ingest task opened it about 20
        times. While held, one read-write connection stays open: ``read_only``,
        ``transaction`` and ``validation_reader`` get cursors of it, and other
        ``duckdb.connect`` calls of the same path with the same configuration (dlt's) share
        its database. Readers in other processes are shut out for the block, as by any
        writer. Reentrant; the file must not be replaced meanwhile (a connection that holds
        it would go on with the old one)."""
        import duckdb

        path = str(self.settings.warehouse_path)
        if path in _HELD:
            yield
            return
        self.settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(path)
        try:
            # the database is shared for the block (dlt's connections too, and dlt sets its
            # time zone globally as soon as it connects): the settings from the start
            configure_duckdb(con, self.settings)
        except BaseException:
            con.close()
            raise
        _HELD[path] = con
        try:
            yield
        finally:
            del _HELD[path]
            con.close()

    def _connect(self, read_only: bool = False) -> Any:
        """A new connection to the working file, or a cursor of the held one."""
        import duckdb

        path = str(self.settings.warehouse_path)
        held = _HELD.get(path)
        if held is not None:
            return held.cursor()
        if not read_only:
            self.settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(path, read_only=read_only)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        con = self._connect()
        try:
            con.begin()
            yield Connection(con, self.name)
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()

    @contextmanager
    def read_only(self) -> Iterator[Connection]:
        with self._connect(read_only=True) as con:
            yield Connection(con, self.name)

    @contextmanager
    def published(self) -> Iterator[Connection]:
        import duckdb

        path = self.settings.published_path
        if not path.is_file():
            raise PublishedMissing(f"no published warehouse at {path}")
        # ATTACH from an in-memory database opens the file as it is now: a plain connect in
        # a process that still holds the path open would reuse the replaced file.
        with duckdb.connect() as con:
            attach_read_only(con, path, "published")
            con.execute("use published")
            yield Connection(con, self.name)

    @contextmanager
    def validation_reader(self) -> Iterator[Connection]:
        import duckdb

        path = str(self.settings.warehouse_path)
        try:
            con = self._connect(read_only=True)
        except duckdb.ConnectionException:
            # this process already holds the file open for writing (a task that records audit
            # rows around the validation): DuckDB allows one configuration per file and process
            con = duckdb.connect(path)
        try:
            yield Connection(con, self.name)
        finally:
            con.close()

    def gx_datasource(self, context: Any, name: str, con: Connection) -> Any:
        # GX's connections are cursors of the runner's own: DuckDB refuses a second connection
        # to the file with another configuration in one process, and duckdb_engine's differs
        # (its user agent). The URL only picks the dialect.
        import duckdb_engine

        raw = con.con
        return context.data_sources.add_sql(
            name,
            connection_string=f"duckdb:///{self.settings.warehouse_path}",
            kwargs={"creator": lambda: duckdb_engine.ConnectionWrapper(raw.cursor())},
        )

    def dlt_destination(self) -> Any:
        import dlt

        return dlt.destinations.duckdb(str(self.settings.warehouse_path))

    def json_object(self, fields: dict[str, str]) -> str:
        pairs = ", ".join(f'"{name}" := {expr}' for name, expr in fields.items())
        return f"cast(to_json(struct_pack({pairs})) as varchar)"

    def json_array(self, expressions: Sequence[str]) -> str:
        return f"cast(to_json([{', '.join(expressions)}]) as varchar)"


class Postgres(Engine):
    name = "postgres"

    def working_exists(self) -> bool:
        return True  # a missing database is created or reported by warehouse.databases

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with pg_connect(self.settings.postgres_url) as con:  # commits on exit, else rolls back
            yield Connection(con, self.name)

    @contextmanager
    def read_only(self) -> Iterator[Connection]:
        with _pg_reader(self.settings.postgres_url) as con:
            yield Connection(con, self.name)

    @contextmanager
    def published(self) -> Iterator[Connection]:
        import psycopg

        try:
            con = pg_connect(self.settings.published_postgres_url)
        except psycopg.OperationalError as exc:
            if "does not exist" in str(exc):
                raise PublishedMissing(
                    "the published database (OPS_PUBLISHED_POSTGRES_URL) does not exist"
                ) from exc
            raise
        # one read-only snapshot for every query of the connection: a publish that commits
        # meanwhile (a schema swap) is not seen half-way through a report
        con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        con.read_only = True
        with con:
            yield Connection(con, self.name)

    def index_load_marks(self, schema: str, tables: Iterable[str]) -> None:
        # a b-tree on _loaded_at (every raw row carries it): "rows loaded after the mark" reads
        # the day's rows, not the whole table (PostgreSQL has no zone maps). Created once per
        # table; dlt's merge keeps it up to date, a replaced table (a sheet) gets it again.
        with self.transaction() as con:
            for table in tables:
                con.execute(
                    f'create index if not exists "{table}__loaded_at" '
                    f'on {schema}."{table}" (_loaded_at)'
                )

    def gx_datasource(self, context: Any, name: str, con: Connection) -> Any:
        from sqlalchemy.engine import make_url

        url = make_url(self.settings.postgres_url).set(drivername="postgresql+psycopg2")
        return context.data_sources.add_postgres(
            name, connection_string=url.render_as_string(hide_password=False)
        )

    def dlt_destination(self) -> Any:
        import dlt
        from sqlalchemy.engine import make_url

        url = make_url(self.settings.postgres_url).set(drivername="postgresql")
        if not url.password:
            # dlt insists on a password; with trust/peer auth the server ignores it
            url = url.set(password="unused")
        return dlt.destinations.postgres(url.render_as_string(hide_password=False))

    def json_object(self, fields: dict[str, str]) -> str:
        pairs = ", ".join(f"'{name}', {expr}" for name, expr in fields.items())
        return f"json_build_object({pairs})::text"

    def json_array(self, expressions: Sequence[str]) -> str:
        return f"json_build_array({', '.join(expressions)})::text"


# --- Spark ----------------------------------------------------------------------------

# The readers' names: views over the newest published version, and its pointer.
PUBLISHED_DB = "published"
PUBLISHED_AUDIT_DB = "published_audit"
POINTER = f"{PUBLISHED_DB}._version"
VERSION_PREFIX = "ops_pub_"
VERSIONS_KEPT = 3


class SparkUnavailable(OpsWarehouseError):
    """The Spark Thrift server does not answer."""

    permanent = False


class SparkCursor:
    """A PyHive cursor whose rows carry dates and timestamps as Python values, as the other
    engines' drivers return them (PyHive returns them as text)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def description(self):
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def _convert(self, rows: list[tuple]) -> list[tuple]:
        kinds = [d[1] for d in self._cursor.description or ()]
        converters = [_CONVERTERS.get(kind) for kind in kinds]
        if not any(converters):
            return rows
        return [
            tuple(
                value if convert is None or value is None else convert(value)
                for convert, value in zip(converters, row, strict=True)
            )
            for row in rows
        ]

    def fetchall(self) -> list[tuple]:
        return self._convert(self._cursor.fetchall())

    def fetchone(self) -> tuple | None:
        row = self._cursor.fetchone()
        return None if row is None else self._convert([row])[0]

    def fetchmany(self, size: int) -> list[tuple]:
        return self._convert(self._cursor.fetchmany(size))


def _timestamp(value: str | datetime) -> datetime:
    # the Thrift server's session time zone is UTC (spark_cluster, compose)
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


def _date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


_CONVERTERS = {"DATE_TYPE": _date, "TIMESTAMP_TYPE": _timestamp}


class SparkConnection(Connection):
    """A connection to the Spark Thrift server. ``schemas`` renames schema qualifiers in the
    SQL it runs (``marts.x`` → ``ops_pub_<version>.x``): how a published reader pins one
    version while running the same SQL as on the other engines."""

    def __init__(self, con: Any, schemas: dict[str, str] | None = None) -> None:
        super().__init__(con, "spark")
        self.schemas = schemas or {}
        self._rename = (
            re.compile(r"\b(" + "|".join(map(re.escape, self.schemas)) + r")\.")
            if self.schemas
            else None
        )

    double_type = "double"
    # the session time zone is UTC; a literal with an offset is read as that instant
    instant_type = "timestamp"

    def local_date(self, expression: str, tz: str) -> str:
        # timestamps are UTC (the session time zone); from_utc_timestamp shifts to tz
        return f"cast(from_utc_timestamp({expression}, '{tz}') as date)"

    def _sql(self, sql: str) -> str:
        if self._rename is not None:
            sql = self._rename.sub(lambda m: self.schemas[m.group(1)] + ".", sql)
        return sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> SparkCursor:
        cursor = self.con.cursor()
        sql = self._sql(sql)
        if params:
            # the Thrift protocol has no parameters: each ? becomes a literal, in order
            parts = sql.split("?")
            if len(parts) != len(params) + 1:
                raise ValueError(f"{len(parts) - 1} placeholders for {len(params)} parameters")
            sql = parts[0] + "".join(
                spark_literal(value) + part for value, part in zip(params, parts[1:], strict=True)
            )
        cursor.execute(sql)
        return SparkCursor(cursor)

    def executemany(self, sql, rows) -> None:
        for row in rows:
            self.execute(sql, row)

    def modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError("Spark tables here are written whole, never row by row")

    def tables(self, schema: str) -> list[str]:
        schema = self.schemas.get(schema, schema)
        if not self.has_schema(schema):
            return []
        return sorted(r[1] for r in self.fetch(f"show tables in {schema}") if not r[2])

    def has_schema(self, schema: str) -> bool:
        schema = self.schemas.get(schema, schema)
        return bool(self.fetch(f"show databases like '{sql_literal(schema)}'"))

    def has_table(self, schema: str, table: str) -> bool:
        return table in self.tables(schema)

    def columns(self, schema: str, table: str) -> list[str]:
        if not self.has_table(schema, table):
            return []
        schema = self.schemas.get(schema, schema)
        names = []
        for name, _type, _comment in self.fetch(f"describe table {schema}.{table}"):
            if not name or name.startswith("#"):  # partition and detail sections follow
                break
            names.append(name)
        return names


def spark_literal(value: Any) -> str:
    """A Python value as a Spark SQL literal (Spark's string literals take backslash escapes)."""
    from decimal import Decimal

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"timestamp'{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"date'{value.isoformat()}'"
    if isinstance(value, list | tuple | set | frozenset):
        return "(" + ", ".join(spark_literal(v) for v in value) + ")"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


# Each session of ours on the Thrift server (the checks, GX's, publish, our readers) starts
# with these: SQL read as on the other engines ("x" an identifier, a value that does not fit its
# type an error, not a null), timestamps in UTC; dbt's sessions get the same through profiles.yml's server_side_parameters (all but the
# double-quoted identifiers: dbt-spark quotes with backticks). Without allowPrecisionLoss=false
# a decimal product is cut to 6 decimals before round(..., 2): a check recomputing money would
# round 610.76499978 to 610.77 where the models (and DuckDB) give 610.76.
SPARK_SESSION = (
    "spark.sql.ansi.enabled=true",
    "spark.sql.ansi.doubleQuotedIdentifiers=true",
    "spark.sql.session.timeZone=UTC",
    "spark.sql.decimalOperations.allowPrecisionLoss=false",
)


def thrift_connect(settings: Settings, database: str = "default"):
    """A PyHive connection to the configured Spark Thrift server, its session set up
    (``SPARK_SESSION``), ``database`` the default one."""
    from pyhive import hive

    # PyHive logs every statement's text at INFO: a task log would be mostly SQL
    logging.getLogger("pyhive").setLevel(logging.WARNING)
    try:
        con = hive.connect(
            host=settings.spark_thrift_host,
            port=settings.spark_thrift_port,
            username=settings.spark_user,
            database=database,
        )
        cursor = con.cursor()
        for setting in SPARK_SESSION:
            cursor.execute(f"set {setting}")
        return con
    except Exception as exc:  # thrift's TTransportException, socket errors
        raise SparkUnavailable(
            f"the Spark Thrift server at {settings.spark_thrift_host}:"
            f"{settings.spark_thrift_port} does not answer ({exc}); start it (make spark-up) "
            "or set OPS_SPARK_THRIFT_HOST/OPS_SPARK_THRIFT_PORT"
        ) from exc


class Spark(Engine):
    """Apache Spark as the warehouse engine (``OPS_WAREHOUSE=spark``).

    Where things live:

    - **Landing** (the loaders' raw tables, the audit trail, the quarantine, dlt's state): a
      DuckDB file, ``OPS_WAREHOUSE_PATH``, exactly as on the DuckDB engine. The loads are bound by
      the sources' APIs, not by compute, and they need transactions (a load, its audit rows and
      its quarantine commit together) that Parquet tables do not have.
    - **The lake** (``OPS_SPARK_LAKE_DIR``, a folder every Spark node reads at the same path):
      before each build, ``lake.sync_raw`` writes every raw table that changed since the last build
      as Parquet and points a Spark table of the same name (``raw_sales.orders``) at it.
    - **Spark** (its Thrift server, ``OPS_SPARK_THRIFT_HOST``/``_PORT``): dbt-spark builds
      staging, intermediate and marts there as Parquet tables; the staging and marts checks are
      pushed down to it as SQL (GX's SQL datasource over PyHive's ``hive://`` dialect).
    - **Published**: each publish copies the marts into a database of their own,
      ``ops_pub_<version>``, and the audit trail into ``ops_pub_<version>_audit``; only when both
      are complete and their row counts verified does it point the readers' names at them. Readers
      of this package (reports, completeness) read the pointer ``published._version`` once and
      then every table of that version (:meth:`published`): a report sees one publish,
      whole, however many publishes happen while it reads. BI tools read the views
      ``published.<mart>`` and ``published_audit.<table>`` through the Thrift server; each view is
      replaced on its own (one metastore update each), so one query sees one publish, while a
      dashboard's separate queries issued during the second a publish swaps its views may see
      two (docs/decisions.md, "Spark"). The three newest versions are kept: a reader that pinned
      one is not cut off by the next publish.
    """

    name = "spark"
    builds_incrementally = False
    # Parquet tables keep no NOT NULL constraint: the marts' not_null tests run every day
    daily_selector = "daily_spark"
    # the checks wait on the cluster's Thrift server, not on GX's Python
    checks_in_processes = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.landing = DuckDB(settings)

    # landing: the DuckDB file's methods
    def working_exists(self) -> bool:
        return self.landing.working_exists()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.landing.held():
            yield

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.landing.transaction() as con:
            yield con

    @contextmanager
    def read_only(self) -> Iterator[Connection]:
        with self.landing.read_only() as con:
            yield con

    @contextmanager
    def validation_reader(self) -> Iterator[Connection]:
        with self.landing.validation_reader() as con:
            yield con

    def dlt_destination(self) -> Any:
        return self.landing.dlt_destination()

    def json_object(self, fields: dict[str, str]) -> str:
        return self.landing.json_object(fields)

    def json_array(self, expressions: Sequence[str]) -> str:
        return self.landing.json_array(expressions)

    # Spark
    @contextmanager
    def spark(self, schemas: dict[str, str] | None = None) -> Iterator[SparkConnection]:
        """A connection to the Spark Thrift server, closed on exit."""
        con = thrift_connect(self.settings)
        try:
            yield SparkConnection(con, schemas)
        finally:
            con.close()

    @contextmanager
    def models_reader(self) -> Iterator[Connection]:
        with self.spark() as con:
            yield con

    @contextmanager
    def layer_reader(self, layer: str, landing: Connection) -> Iterator[Connection]:
        """Raw is checked where the loaders wrote it (landing); staging and marts in Spark."""
        if layer == "raw":
            yield landing
        else:
            with self.spark() as con:
                yield con

    def gx_datasource(self, context: Any, name: str, con: Connection) -> Any:
        if con.engine != "spark":
            return self.landing.gx_datasource(context, name, con)
        s = self.settings
        # GX's connections are sessions of ours (SPARK_SESSION), not the server's defaults
        return context.data_sources.add_sql(
            name,
            connection_string=f"hive://{s.spark_user}@{s.spark_thrift_host}:{s.spark_thrift_port}/default",
            kwargs={"creator": lambda: thrift_connect(s)},
        )

    def prepare_build(self) -> None:
        from ops_warehouse.warehouse.lake import sync_raw

        with self.spark() as con, self.landing.read_only() as landing:
            sync_raw(self.settings, landing, con)

    @contextmanager
    def published(self) -> Iterator[Connection]:
        with self.spark() as con:
            version = published_version(con)
            if version is None:
                raise PublishedMissing(
                    f"nothing published on Spark yet (no {POINTER} at "
                    f"{self.settings.spark_thrift_host}:{self.settings.spark_thrift_port})"
                )
            con.schemas.update({MARTS: version, AUDIT_SCHEMA: f"{version}_audit"})
            yield SparkConnection(con.con, con.schemas)


def published_version(con: SparkConnection) -> str | None:
    """The database of the newest complete publish, or None when nothing was published."""
    if not con.has_table(PUBLISHED_DB, "_version"):
        return None
    rows = con.fetch(f"select version from {POINTER}")
    return rows[0][0] if rows else None


ENGINE_NAMES = ("duckdb", "postgres", "spark")


def adapter(name: str) -> type[Engine]:
    """The adapter class of an engine name."""
    return {e.name: e for e in (DuckDB, Postgres, Spark)}[name]


def engine(settings: Settings) -> Engine:
    """The adapter of the configured engine (``OPS_WAREHOUSE``)."""
    return adapter(settings.warehouse)(settings)
