"""Sales: the shop's transactional database (SQLite or PostgreSQL).

Tables are reflected and queried through SQLAlchemy. The rows are read by ADBC straight into
Arrow: a SQLite shop by its SQLite driver (10x faster than a Python object per value: 2.4 s
instead of 26 s for 3.5 M orders and order items), a PostgreSQL shop by its PostgreSQL driver
(binary COPY; 3x faster, a fifth of the CPU: docs/decisions.md, "Page sizes and the
PostgreSQL shop"). If the driver cannot read a table as it is (a SQLite column whose values
change type, a PostgreSQL column of a type the driver hands over otherwise than the row
reader), the table is read row by row through SQLAlchemy instead, with the same result.

A shop whose tables or columns have other names is read through the mapping file's
``shop_sql`` section: per entity, its table and the column holding each contract field. Such a
mapping is checked against the database's real columns before anything is read, and the
entity's reader then reads exactly the contract's fields (an unmapped entity reads its table
whole: a column the contract does not know is loaded and reported as schema drift).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from ops_warehouse.errors import SourceConfigError, SourceSchemaError, SourceUnavailableError
from ops_warehouse.pipeline.contracts import Entity, entities_of
from ops_warehouse.pipeline.sources import mapping
from ops_warehouse.pipeline.sources.arrow_rows import (
    Batch,
    Origin,
    arrow_to_batch,
    columns_to_batch,
)
from ops_warehouse.pipeline.sources.window import Window, advance_cursor, cursor_lower_bound
from ops_warehouse.redact import redact
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000


def engine(settings: Settings) -> sa.Engine:
    try:
        return sa.create_engine(settings.shop_db_url)
    except Exception as exc:  # bad URL or missing driver
        raise SourceUnavailableError(
            f"sales: cannot open the shop database: {exc}. Check the setting OPS_SHOP_DB_URL."
        ) from exc


# --- the mapping file's shop_sql section: a shop whose tables and columns have other names


def _shop_sql_entry(entity: Entity) -> mapping.Section:
    return mapping.Section(
        {
            "table": mapping.Key(mapping.text, doc=f"the shop's table holding {entity.name}"),
            "columns": mapping.Key(
                mapping.mapping_of(mapping.one_of(*entity.field_names), mapping.text),
                doc="contract field: the name of the column holding it (a field not listed is "
                "in the column of its own name)",
            ),
        }
    )


mapping.register(
    "shop_sql",
    mapping.Section({e.name: _shop_sql_entry(e) for e in entities_of("sales")}),
)


@dataclass(frozen=True)
class SourceTable:
    """Where the shop keeps one entity: its table and, per contract field, the column holding
    it. ``mapped``: the mapping file's ``shop_sql`` names it, and then only the contract's
    fields are read."""

    entity: str
    table: str
    columns: dict[str, str] = field(default_factory=dict)
    mapped: bool = False

    def column(self, name: str) -> str:
        return self.columns.get(name, name)


def source_tables(settings: Settings) -> dict[str, SourceTable]:
    """Each sales entity's table and columns, from the mapping file (validated)."""
    section = mapping.load(settings.mapping_file).section("shop_sql")
    out = {}
    for e in entities_of("sales"):
        entry = section[e.name]
        columns = dict(entry["columns"] or {})
        out[e.name] = SourceTable(
            e.name, entry["table"] or e.name, columns, entry["table"] is not None or bool(columns)
        )
    return out


def check_source(conn: sa.Connection, entity: Entity, source: SourceTable) -> None:
    """A mapped entity's table and columns, checked against the database before any read:
    an error names the mapping key, the table and the column."""
    key = f"shop_sql.{entity.name}"
    database = conn.engine.url.render_as_string(hide_password=True)
    try:
        present = [c["name"] for c in sa.inspect(conn).get_columns(source.table)]
    except sa.exc.NoSuchTableError:
        present = []
    if not present:
        raise SourceConfigError(
            f"mapping file: {key}.table names the table {source.table!r}, which the shop "
            f"database {database} (OPS_SHOP_DB_URL) does not have. Fix the key or the setting."
        )
    for name in entity.field_names:
        column = source.column(name)
        if column in present:
            continue
        if name in source.columns:
            how = f"{key}.columns.{name} names the column {column!r}"
        else:
            how = f"{key}.columns has no entry for {name!r}, and there is no column {name!r}"
        raise SourceConfigError(
            f"mapping file: {how}, which table {source.table!r} of the shop database "
            f"{database} does not have (its columns: {', '.join(present)}). Fix the key."
        )


def readers(
    settings: Settings, stack: ExitStack
) -> dict[str, Callable[[Entity, dict, Window], Iterator[Batch]]]:
    """Each sales entity's reader of the shop database; a ``shop_sql`` mapping is checked
    against the database first, so that a wrong name stops the load before any read."""
    sources = source_tables(settings)
    conn = stack.enter_context(engine(settings).connect())
    for e in entities_of("sales"):
        if sources[e.name].mapped:
            check_source(conn, e, sources[e.name])
    return {
        e.name: (lambda e, s, w: read_table(conn, e, s, w, sources[e.name]))
        for e in entities_of("sales")
    }


# --- reading ----------------------------------------------------------------------------


def _table(conn: sa.Connection, entity: Entity, source: SourceTable | None = None) -> sa.Table:
    """The shop's table as it really is (reflected), checked against the contract."""
    name = source.table if source is not None else entity.name
    try:
        table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    except sa.exc.NoSuchTableError:
        raise SourceSchemaError(
            f"sales.{entity.name}: the shop database has no table {name!r}"
        ) from None
    return table


def read_table(
    conn: sa.Connection,
    entity: Entity,
    state: dict,
    window: Window,
    source: SourceTable | None = None,
) -> Iterator[Batch]:
    source = source or SourceTable(entity.name, entity.name)
    table = _table(conn, entity, source)
    cursor_name = source.column(entity.cursor)
    cursor_col = table.c[cursor_name] if cursor_name in table.c else None
    if cursor_col is None:
        raise SourceSchemaError(
            f"sales.{entity.name}: cursor column {cursor_name!r} is missing from the shop database"
        )
    if source.mapped:
        missing = [f for f in entity.field_names if source.column(f) not in table.c]
        if missing:
            check_source(conn, entity, source)  # names the key, the table and the column
        query = sa.select(*[table.c[source.column(f)].label(f) for f in entity.field_names])
    else:
        query = sa.select(table)
    lower, upper = _bounds(conn, entity, cursor_lower_bound(state, window), window.end)
    if lower is not None:
        query = query.where(cursor_col >= lower)
    query = query.where(cursor_col < upper).order_by(cursor_col)
    origin = Origin(f"shop table {source.table}")
    columnar = _read_arrow(conn, entity, query)
    if columnar is not None:
        for start in range(0, columnar.num_rows, BATCH_ROWS):
            batch = arrow_to_batch(entity, columnar.slice(start, BATCH_ROWS), window.end, origin)
            advance_cursor(state, batch.table, entity.cursor)
            yield batch
        return
    result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(query)
    names = list(result.keys())
    for partition in result.partitions():
        columns = [list(col) for col in zip(*partition, strict=True)]
        batch = columns_to_batch(entity, names, columns, window.end, origin)
        advance_cursor(state, batch.table, entity.cursor)
        yield batch


def _bounds(
    conn: sa.Connection, entity: Entity, lower: datetime | None, upper: datetime
) -> tuple[object, object]:
    """A cursor range as the shop's column compares it."""
    if entity.cursor == "rate_date":
        return (lower.date() if lower is not None else None), upper.date()
    # SQLite keeps timestamps as naive UTC text; PostgreSQL compares aware values.
    if conn.dialect.name == "sqlite":
        return (lower.replace(tzinfo=None) if lower is not None else None), upper.replace(
            tzinfo=None
        )
    return lower, upper


def count_rows(
    conn: sa.Connection, entity: Entity, window: Window, source: SourceTable | None = None
) -> int:
    """Rows the shop holds whose cursor is before the window's end: each of them is in raw
    once every window up to that end has been loaded (in this or an earlier version)."""
    source = source or SourceTable(entity.name, entity.name)
    table = _table(conn, entity, source)
    _, upper = _bounds(conn, entity, None, window.end)
    cursor = table.c[source.column(entity.cursor)]
    query = sa.select(sa.func.count()).select_from(table).where(cursor < upper)
    return int(conn.execute(query).scalar_one())


def _read_sqlite_arrow(conn: sa.Connection, entity: Entity, query: sa.Select) -> pa.Table | None:
    """The query's rows as one Arrow table, read by ADBC's SQLite driver; None when the driver
    cannot read them (it types each column by its first rows and refuses a value of another
    type): the caller reads row by row. Read whole, so that nothing has been handed on when
    that happens."""
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    path = conn.engine.url.database
    if not path or path == ":memory:":
        return None
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    try:
        with adbc_sqlite.connect(path) as adbc, adbc.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetch_arrow_table()
    except (OSError, adbc_sqlite.Error) as exc:
        log.info("sales.%s: read row by row (%s)", entity.name, exc)
        return None


def _read_arrow(conn: sa.Connection, entity: Entity, query: sa.Select) -> pa.Table | None:
    """The query's rows read by the shop's ADBC driver; None: read them row by row."""
    if conn.dialect.name == "sqlite":
        return _read_sqlite_arrow(conn, entity, query)
    if conn.dialect.name == "postgresql":
        return _read_postgres_arrow(conn, entity, query)
    return None


def _read_postgres_arrow(conn: sa.Connection, entity: Entity, query: sa.Select) -> pa.Table | None:
    """The query's rows as one Arrow table, read by ADBC's PostgreSQL driver (binary COPY)
    over a connection of its own to the same database; None when it cannot connect or a column
    has a type whose values it hands over otherwise than the row reader does (see
    ``_postgres_column``): the caller reads row by row. A message names no password."""
    import adbc_driver_postgresql.dbapi as adbc_postgres

    uri = conn.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    try:
        with adbc_postgres.connect(uri) as adbc, adbc.cursor() as cursor:
            cursor.execute(sql)
            table = cursor.fetch_arrow_table()
    except (OSError, adbc_postgres.Error) as exc:
        password = conn.engine.url.password
        text = str(exc) if not password else str(exc).replace(str(password), "***")
        log.info("sales.%s: read row by row (%s)", entity.name, redact(text))
        return None
    types = {f.name: f.type for f in entity.fields}
    columns = []
    for read, column in zip(table.schema, table.columns, strict=True):
        typed = _postgres_column(types.get(read.name), read, column)
        if typed is None:
            log.info(
                "sales.%s: read row by row (column %r is %s)", entity.name, read.name, read.type
            )
            return None
        columns.append(typed)
    return pa.Table.from_arrays(columns, names=table.column_names)


_POSTGRES_INTS = (pa.int16(), pa.int32(), pa.int64())
_CENTS = {(precision, 2) for precision in range(2, 19)}


def _numeric_precision_scale(read: pa.Field) -> tuple[int, int] | None:
    """NUMERIC(p, s)'s p and s from the type modifier the driver reports (none: unbounded)."""
    typmod = int((read.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
    if typmod < 4:
        return None
    return (typmod - 4) >> 16, (typmod - 4) & 0xFFFF


def _postgres_column(
    kind: str | None, read: pa.Field, column: pa.ChunkedArray
) -> pa.ChunkedArray | None:
    """A column as ADBC's PostgreSQL driver reads it, in the Arrow type ``arrow_to_batch``
    takes, when that makes exactly what the row reader makes of psycopg's values for the
    contract type ``kind`` (None: a column the contract does not know, loaded as text);
    otherwise None. NUMERIC arrives as text: NUMERIC(p, 2) with p <= 18 becomes the
    contract's decimal, with the scale of psycopg's Decimal, so that a quarantined row shows
    the same value (another NUMERIC, or a NaN, is read row by row); a NUMERIC the contract
    does not know stays text, as the row reader's str() makes it."""
    t = read.type
    if isinstance(t, pa.BaseExtensionType):
        if getattr(t, "type_name", None) != "numeric":
            return None
        text = pa.chunked_array([c.storage for c in column.chunks], t.storage_type)
        if kind is None:
            return text
        if kind != "decimal" or _numeric_precision_scale(read) not in _CENTS:
            return None
        try:
            return pc.cast(text, pa.decimal128(18, 2))
        except pa.ArrowInvalid:  # NaN
            return None
    if t in _POSTGRES_INTS:
        if kind in ("int", "decimal", "float", None):
            return column.cast(pa.int64())
        return None
    accepted = {
        "text": (pa.string(),),
        "float": (pa.float64(),),
        "date": (pa.date32(),),
        "timestamp": (pa.timestamp("us"), pa.timestamp("us", tz="UTC")),
        "bool": (pa.bool_(),),
        # as text, the row reader's str() and Arrow's cast agree on these only
        None: (pa.string(), pa.date32()),
    }
    return column if t in accepted[kind] else None
