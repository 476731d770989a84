"""Turn rows served by a source into Arrow tables typed by the contract, and set bad rows aside.

Required fields must be present in what a source serves (a missing or renamed one stops
the load: ``SourceSchemaError``); a field the contract does not know is kept (as text) and
reported as drift, never silently dropped, provided its name is a plain lower-case name that
raw keeps as it is (any other name stops the load, named as served). Row by row, a value that
cannot be read as its type, or that breaks a rule of docs/quality.md, sends the row to
quarantine with its payload exactly as served and a reason naming the rule, the value, the
source, entity, file or URL and row (see ``rules.py``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ops_warehouse.errors import SourceSchemaError
from ops_warehouse.pipeline.contracts import Entity, Field
from ops_warehouse.pipeline.sources.rules import future_limit_for, row_reasons, shown

log = logging.getLogger(__name__)

ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "int": pa.int64(),
    "decimal": pa.decimal128(18, 2),
    "float": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "bool": pa.bool_(),
}

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("entity", pa.string()),
        ("record_key", pa.string()),
        ("reason", pa.string()),
        ("payload", pa.string()),
    ]
)


@dataclass
class Batch:
    """One page or partition of a source: the rows that passed, and those set aside."""

    table: pa.Table
    quarantined: pa.Table

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + self.quarantined.num_rows


@dataclass(frozen=True)
class Origin:
    """Where a batch's rows came from, as errors and quarantine reasons name it: a file, an
    API endpoint or a shop table (``place``); a file's rows by the line each starts on, the
    others by their primary key."""

    place: str
    lines: Sequence[int] | None = None

    def row(self, entity: Entity, index: int, record: dict[str, Any]) -> str:
        if self.lines is not None:
            return f"line {self.lines[index]}"
        return "row " + ", ".join(f"{k} {shown(k, record.get(k))}" for k in entity.primary_key)


# A field name raw keeps as it is (dlt's naming leaves it alone, PostgreSQL's 63-character
# limit holds) and the drift check sees (loader columns start with "_").
PLAIN_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
PLAIN_NAME_MAX = 63


def arrow_schema(entity: Entity) -> pa.Schema:
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.type]) for f in entity.fields])


def empty_batch(entity: Entity) -> Batch:
    return Batch(arrow_schema(entity).empty_table(), QUARANTINE_SCHEMA.empty_table())


def _cast(field: Field, values: list[Any]) -> pa.Array:
    """Typed column of values as served; raises on any value that does not convert."""
    target = ARROW_TYPES[field.type]
    if field.type in ("decimal", "date", "timestamp"):
        try:  # served as text (or null), as the APIs serve them: no str() per value
            text = pa.array(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            text = pa.array([None if v is None else str(v) for v in values], pa.string())
        return text.cast(target)
    if field.type == "float":
        return pa.array([None if v is None else float(v) for v in values], target)
    if field.type == "int":
        try:  # Arrow refuses text for an int column: then convert the text ourselves
            return _int_array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if not any(isinstance(v, str) for v in values):
                raise
        return pa.array([None if v is None else int(v) for v in values], target)
    return pa.array(values, target)


def _int_array(values: Sequence[Any]) -> pa.Array:
    """Whole numbers; Arrow would truncate a fraction (1.5 → 1) without a word."""
    if any(isinstance(v, float) and not v.is_integer() for v in values):
        raise ValueError("a fraction where a whole number belongs")
    return pa.array(values, pa.int64())


_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


def _convert(field: Field, values: list[Any], reasons: list[str | None]) -> pa.Array:
    """Typed column; a value that does not convert becomes null and marks its row."""
    try:
        return _cast(field, values)
    except _CAST_ERRORS:
        pass
    clean = []
    for index, value in enumerate(values):
        try:
            _cast(field, [value])
            clean.append(value)
        except _CAST_ERRORS:
            clean.append(None)
            if reasons[index] is None:
                reasons[index] = (
                    f"field {field.name!r} has value {shown(field.name, value)}, "
                    f"not a valid {field.type}"
                )
    return _cast(field, clean)


def check_names(entity: Entity, names: Iterable[Any], origin: Origin | None = None) -> None:
    """Raise on a field the contract does not know whose name raw could not keep as served
    (dlt would rename it, and a leading "_" would hide it from the drift check)."""
    where = f" ({origin.place})" if origin else ""
    known = set(entity.field_names)
    for name in names:
        if name in known:
            continue
        if (
            not isinstance(name, str)
            or len(name) > PLAIN_NAME_MAX
            or not PLAIN_NAME.fullmatch(name)
        ):
            raise SourceSchemaError(
                f"{entity.source}.{entity.name}{where}: field {shown('', name)} is not a plain "
                "lower-case name (a-z, digits and single underscores, starting with a letter, "
                f"at most {PLAIN_NAME_MAX} characters): raw would keep it under another name. "
                "The load stopped; nothing of this run was written. Rename or remove the field "
                "at the source, or add it to the contract in ops_warehouse/pipeline/contracts.py."
            )


def check_fields(entity: Entity, present: set[str], origin: Origin | None = None) -> list[str]:
    """Return the fields the contract does not know; raise on a missing required field and on
    an unknown field whose name raw could not keep as served."""
    known = set(entity.field_names)
    unknown = sorted(present - known, key=str)
    where = f" ({origin.place})" if origin else ""
    missing = [f for f in entity.required_fields if f not in present]
    if missing:
        hint = f" (new fields served instead: {', '.join(map(repr, unknown))})" if unknown else ""
        raise SourceSchemaError(
            f"{entity.source}.{entity.name}{where}: required field {missing[0]!r} is missing "
            f"from the rows served{hint}. The load stopped; nothing of this run was written. "
            "Fix the source or update the contract in ops_warehouse/pipeline/contracts.py."
        )
    check_names(entity, unknown, origin)
    if unknown:
        log.warning(
            "schema drift in %s.%s: new field(s) %s loaded as text",
            entity.source,
            entity.name,
            ", ".join(unknown),
        )
    return unknown


def _in_window(entity: Entity, table: pa.Table, window_end: datetime | None) -> list[int] | None:
    """Rows whose cursor lies before the run's interval end (later changes belong to later
    runs), plus rows whose cursor is unreadable (they go to quarantine). None: all rows."""
    if window_end is None or entity.cursor is None or entity.mode != "cursor":
        return None
    column = table[entity.cursor]
    bound: Any = window_end.date() if pa.types.is_date(column.type) else window_end
    inside = pc.or_kleene(pc.less(column, pa.scalar(bound, column.type)), pc.is_null(column))
    if pc.all(inside).as_py():
        return None
    return pc.indices_nonzero(inside).to_pylist()


def _split(
    entity: Entity,
    columns: dict[str, pa.Array],
    reasons: list[str | None],
    payload: Callable[[int], dict[str, Any]],
    window_end: datetime | None,
    origin: Origin | None,
) -> Batch:
    table = pa.Table.from_pydict(columns)
    index = _in_window(entity, table, window_end)
    position: Callable[[int], int] = lambda i: i  # noqa: E731
    if index is not None:
        table = table.take(pa.array(index, pa.int64()))
        reasons = [reasons[i] for i in index]
        original = payload
        payload = lambda i: original(index[i])  # noqa: E731
        position = index.__getitem__
    limit = future_limit_for(window_end) if window_end else datetime.max.replace(tzinfo=UTC)
    reasons = row_reasons(entity, table, reasons, limit, payload)
    bad = [i for i, reason in enumerate(reasons) if reason is not None]
    if not bad:
        return Batch(table, QUARANTINE_SCHEMA.empty_table())
    keep = pa.array([r is None for r in reasons])
    records = [payload(i) for i in bad]
    if origin is not None:
        where = f"{entity.source}.{entity.name}, {origin.place}"
        for i, record in zip(bad, records, strict=True):
            reasons[i] = f"{reasons[i]}; {where}, {origin.row(entity, position(i), record)}"
    quarantined = pa.Table.from_pydict(
        {
            "source": [entity.source] * len(bad),
            "entity": [entity.name] * len(bad),
            "record_key": [_json([rec.get(k) for k in entity.primary_key]) for rec in records],
            "reason": [reasons[i] for i in bad],
            "payload": [_json(rec) for rec in records],
        },
        schema=QUARANTINE_SCHEMA,
    )
    return Batch(table.filter(keep), quarantined)


def _json(value: Any) -> str:
    """Strict JSON of a payload or key: a number JSON cannot hold (NaN, infinity) as text."""
    try:
        return json.dumps(value, default=str, sort_keys=True, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=str, sort_keys=True)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def rows_to_batch(
    entity: Entity,
    rows: Sequence[dict[str, Any]],
    window_end: datetime | None,
    origin: Origin | None = None,
    reasons: list[str | None] | None = None,
) -> Batch:
    """Rows (dicts, as served by an API or a sheet) → checked, typed batch. ``reasons``: rows
    the reader already knows to be bad (a sheet line with too many cells)."""
    if not rows:
        return empty_batch(entity)
    present: set[str] = set()
    for row in rows:
        present.update(row.keys())
    unknown = check_fields(entity, present, origin)
    reasons = list(reasons) if reasons is not None else [None] * len(rows)
    columns = {
        f.name: _convert(f, [row.get(f.name) for row in rows], reasons) for f in entity.fields
    }
    for name in unknown:
        columns[name] = pa.array(
            [
                v if v is None or isinstance(v, str) else json.dumps(v)
                for v in (r.get(name) for r in rows)
            ],
            pa.string(),
        )
    return _split(entity, columns, reasons, lambda i: dict(rows[i]), window_end, origin)


def columns_to_batch(
    entity: Entity,
    names: list[str],
    columns: list[list[Any]],
    window_end: datetime | None,
    origin: Origin | None = None,
) -> Batch:
    """Column lists (as read from a database) → checked, typed batch."""
    unknown = check_fields(entity, set(names), origin)
    if not columns or not columns[0]:
        return empty_batch(entity)
    by_name = dict(zip(names, columns, strict=True))
    reasons: list[str | None] = [None] * len(columns[0])
    typed: dict[str, pa.Array] = {}
    for f in entity.fields:
        values = by_name[f.name]
        if f.type == "timestamp" and getattr(_first(values), "tzinfo", None) is None:
            # SQLite keeps timestamps as naive UTC text
            try:
                typed[f.name] = pa.array(values, pa.timestamp("us")).cast(ARROW_TYPES["timestamp"])
                continue
            except _CAST_ERRORS:
                pass
        try:
            typed[f.name] = (
                _int_array(values) if f.type == "int" else pa.array(values, ARROW_TYPES[f.type])
            )
        except _CAST_ERRORS:
            typed[f.name] = _convert(f, list(values), reasons)
    for name in unknown:
        typed[name] = pa.array([None if v is None else str(v) for v in by_name[name]], pa.string())
    return _split(
        entity,
        typed,
        reasons,
        lambda i: {n: c[i] for n, c in zip(names, columns, strict=True)},
        window_end,
        origin,
    )


# What a database's Arrow reader may hand over for each contract type (SQLite keeps
# timestamps and dates as text, money as REAL or INTEGER; PostgreSQL's are typed), converted
# in Arrow, not per value.
_ARROW_SOURCES: dict[str, tuple[pa.DataType, ...]] = {
    "text": (pa.string(), pa.large_string()),
    "int": (pa.int64(),),
    "decimal": (pa.float64(), pa.int64(), pa.string(), pa.decimal128(18, 2)),
    "float": (pa.float64(), pa.int64()),
    "date": (pa.string(), pa.date32()),
    "timestamp": (pa.string(), pa.timestamp("us"), pa.timestamp("us", tz="UTC")),
    "bool": (pa.int64(), pa.bool_()),
}


def _arrow_column(field: Field, column: pa.Array) -> pa.Array:
    """One column read by a database's Arrow reader → the contract's type; raises on any
    value that does not convert (the caller then goes value by value). A double becomes a
    decimal rounded to the cent as ``"%.2f" % value`` would (the shop's REAL money); text
    timestamps without an offset are UTC (SQLite keeps them that way)."""
    target = ARROW_TYPES[field.type]
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), target)
    if column.type not in _ARROW_SOURCES[field.type]:
        raise TypeError(f"{field.name}: {column.type} read for a {field.type}")
    if field.type == "timestamp":
        return column.cast(pa.timestamp("us")).cast(target)
    return column.cast(target)


def arrow_to_batch(
    entity: Entity, table: pa.Table, window_end: datetime | None, origin: Origin | None = None
) -> Batch:
    """A slice of a table read as Arrow (a database's columnar reader) → checked, typed batch,
    as ``columns_to_batch`` makes it from Python values, without a Python object per value.
    A slice with a value that does not convert takes the per-value path, which names the
    rows to quarantine."""
    names = table.column_names
    unknown = check_fields(entity, set(names), origin)
    if table.num_rows == 0:
        return empty_batch(entity)
    try:
        typed = {f.name: _arrow_column(f, table[f.name].combine_chunks()) for f in entity.fields}
    except _CAST_ERRORS:
        return columns_to_batch(
            entity, names, [_python_values(entity, n, table[n]) for n in names], window_end, origin
        )
    for name in unknown:
        typed[name] = table[name].combine_chunks().cast(pa.string())
    reasons: list[str | None] = [None] * table.num_rows
    return _split(
        entity, typed, reasons, lambda i: table.slice(i, 1).to_pylist()[0], window_end, origin
    )


def _python_values(entity: Entity, name: str, column: pa.ChunkedArray) -> list[Any]:
    """Values for the per-value path, read as the database driver would have given them:
    text timestamps as UTC datetimes, REAL money rounded to the cent."""
    values = column.to_pylist()
    field = next((f for f in entity.fields if f.name == name), None)
    if field is None:
        return values
    if field.type == "timestamp":
        return [_datetime_or_text(v) for v in values]
    if field.type == "decimal":
        return [f"{v:.2f}" if isinstance(v, float) else v for v in values]
    return values


def _datetime_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value  # not a timestamp: the per-value path names it
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first(values: list[Any]) -> Any:
    return next((v for v in values if v is not None), None)
