"""What differs between the warehouse engines, behind one interface.

``engine(settings)`` returns the adapter of ``OPS_WAREHOUSE``: DuckDB (a file) or
PostgreSQL (a server). The pipeline, the reports and the Airflow tasks ask it for
connections, for dlt's destination and for the few SQL fragments the two dialects spell
differently; only modules of this package branch on the engine.

Every connection is a :class:`Connection`: ``?`` placeholders on both engines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from ops_warehouse.files import sql_literal
from ops_warehouse.settings import Settings


class PublishedMissing(Exception):  # noqa: N818 - a state, read as "published: missing"
    """Nothing has been published yet: the published warehouse does not exist."""


class Connection:
    """One connection to a warehouse (``con``: DuckDB's or psycopg's); ``?`` placeholders."""

    def __init__(self, con: Any, engine: str) -> None:
        self.con = con
        self.engine = engine

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.engine == "postgres" else sql

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

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def working_exists(self) -> bool:
        """Whether the working warehouse can hold data already (a lost DuckDB file cannot)."""
        raise NotImplementedError

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

    def gx_datasource(self, context: Any, name: str, con: Connection) -> Any:
        """Great Expectations' SQL datasource over the working warehouse."""
        raise NotImplementedError

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
    def transaction(self) -> Iterator[Connection]:
        import duckdb

        self.settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.settings.warehouse_path))
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
        import duckdb

        with duckdb.connect(str(self.settings.warehouse_path), read_only=True) as con:
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
            con.execute(f"attach '{sql_literal(path)}' as published (read_only)")
            con.execute("use published")
            yield Connection(con, self.name)

    @contextmanager
    def validation_reader(self) -> Iterator[Connection]:
        import duckdb

        path = str(self.settings.warehouse_path)
        try:
            con = duckdb.connect(path, read_only=True)
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


ENGINES: dict[str, type[Engine]] = {e.name: e for e in (DuckDB, Postgres)}


def engine(settings: Settings) -> Engine:
    """The adapter of the configured engine (``OPS_WAREHOUSE``)."""
    return ENGINES[settings.warehouse](settings)
