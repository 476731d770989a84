"""Turn rows served by a source into Arrow tables typed by the contract, and set bad rows aside.

Required fields must be present in what a source serves (a missing or renamed one stops
the load: ``SourceSchemaError``); a field the contract does not know is kept (as text) and
reported as drift, never silently dropped. Row by row, a value that cannot be read as its
type, or that breaks a rule of docs/quality.md, sends the row to quarantine with the reason and
its payload exactly as served (see ``rules.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ops_warehouse.errors import SourceSchemaError
from ops_warehouse.pipeline.contracts import Entity, Field
from ops_warehouse.pipeline.sources.rules import future_limit_for, row_reasons

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


def arrow_schema(entity: Entity) -> pa.Schema:
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.type]) for f in entity.fields])


def empty_batch(entity: Entity) -> Batch:
    return Batch(arrow_schema(entity).empty_table(), QUARANTINE_SCHEMA.empty_table())


def _cast(field: Field, values: list[Any]) -> pa.Array:
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
            return pa.array(values, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if not any(isinstance(v, str) for v in values):
                raise
        return pa.array([None if v is None else int(v) for v in values], target)
    return pa.array(values, target)


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
                    f"field {field.name!r} has value {value!r}, not a valid {field.type}"
                )
    return _cast(field, clean)


def check_fields(entity: Entity, present: set[str]) -> list[str]:
    """Return the fields the contract does not know; raise on a missing required field."""
    known = set(entity.field_names)
    unknown = sorted(present - known)
    missing = [f for f in entity.required_fields if f not in present]
    if missing:
        hint = f" (new fields served instead: {', '.join(unknown)})" if unknown else ""
        raise SourceSchemaError(
            f"{entity.source}.{entity.name}: required field {missing[0]!r} is missing from "
            f"the rows served{hint}. The load stopped; nothing of this run was written. "
            "Fix the source or update the contract in ops_warehouse/pipeline/contracts.py."
        )
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
) -> Batch:
    table = pa.Table.from_pydict(columns)
    index = _in_window(entity, table, window_end)
    if index is not None:
        table = table.take(pa.array(index, pa.int64()))
        reasons = [reasons[i] for i in index]
        original = payload
        payload = lambda i: original(index[i])  # noqa: E731
    limit = future_limit_for(window_end) if window_end else datetime.max.replace(tzinfo=UTC)
    reasons = row_reasons(entity, table, reasons, limit)
    bad = [i for i, reason in enumerate(reasons) if reason is not None]
    if not bad:
        return Batch(table, QUARANTINE_SCHEMA.empty_table())
    keep = pa.array([r is None for r in reasons])
    records = [payload(i) for i in bad]
    quarantined = pa.Table.from_pydict(
        {
            "source": [entity.source] * len(bad),
            "entity": [entity.name] * len(bad),
            "record_key": [
                json.dumps([rec.get(k) for k in entity.primary_key], default=str) for rec in records
            ],
            "reason": [reasons[i] for i in bad],
            "payload": [json.dumps(rec, default=str, sort_keys=True) for rec in records],
        },
        schema=QUARANTINE_SCHEMA,
    )
    return Batch(table.filter(keep), quarantined)


def rows_to_batch(
    entity: Entity, rows: Sequence[dict[str, Any]], window_end: datetime | None
) -> Batch:
    """Rows (dicts, as served by an API or a sheet) → checked, typed batch."""
    if not rows:
        return empty_batch(entity)
    present: set[str] = set()
    for row in rows:
        present.update(row.keys())
    unknown = check_fields(entity, present)
    reasons: list[str | None] = [None] * len(rows)
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
    return _split(entity, columns, reasons, lambda i: dict(rows[i]), window_end)


def columns_to_batch(
    entity: Entity, names: list[str], columns: list[list[Any]], window_end: datetime | None
) -> Batch:
    """Column lists (as read from a database) → checked, typed batch."""
    unknown = check_fields(entity, set(names))
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
            typed[f.name] = pa.array(values, ARROW_TYPES[f.type])
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
    )


# What a database's Arrow reader may hand over for each contract type (SQLite keeps
# timestamps and dates as text, money as REAL or INTEGER), converted in Arrow, not per value.
_ARROW_SOURCES: dict[str, tuple[pa.DataType, ...]] = {
    "text": (pa.string(), pa.large_string()),
    "int": (pa.int64(),),
    "decimal": (pa.float64(), pa.int64(), pa.string()),
    "float": (pa.float64(), pa.int64()),
    "date": (pa.string(), pa.date32()),
    "timestamp": (pa.string(), pa.timestamp("us")),
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


def arrow_to_batch(entity: Entity, table: pa.Table, window_end: datetime | None) -> Batch:
    """A slice of a table read as Arrow (a database's columnar reader) → checked, typed batch,
    as ``columns_to_batch`` makes it from Python values, without a Python object per value.
    A slice with a value that does not convert takes the per-value path, which names the
    rows to quarantine."""
    names = table.column_names
    unknown = check_fields(entity, set(names))
    if table.num_rows == 0:
        return empty_batch(entity)
    try:
        typed = {f.name: _arrow_column(f, table[f.name].combine_chunks()) for f in entity.fields}
    except _CAST_ERRORS:
        return columns_to_batch(
            entity, names, [_python_values(entity, n, table[n]) for n in names], window_end
        )
    for name in unknown:
        typed[name] = table[name].combine_chunks().cast(pa.string())
    reasons: list[str | None] = [None] * table.num_rows
    return _split(entity, typed, reasons, lambda i: table.slice(i, 1).to_pylist()[0], window_end)


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
