"""Turn rows served by a source into an Arrow table typed by the contract.

Required fields must be present; a field the contract does not know is kept (as text)
and reported as drift so that it is never silently dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ops_warehouse.contracts import Entity, Field
from ops_warehouse.errors import SourceDataError, SourceSchemaError

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


def arrow_schema(entity: Entity) -> pa.Schema:
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.type]) for f in entity.fields])


def _row_key(entity: Entity, row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={row.get(k)!r}" for k in entity.primary_key)


def _cast(field: Field, values: list[Any]) -> pa.Array:
    target = ARROW_TYPES[field.type]
    if field.type in ("decimal", "date", "timestamp"):
        return pa.array([None if v is None else str(v) for v in values], pa.string()).cast(target)
    if field.type == "float":
        return pa.array([None if v is None else float(v) for v in values], target)
    if field.type == "int" and any(isinstance(v, str) for v in values):
        return pa.array([None if v is None else int(v) for v in values], target)
    return pa.array(values, target)


_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


def _convert_column(
    entity: Entity, field: Field, values: list[Any], rows: Sequence[dict]
) -> pa.Array:
    try:
        return _cast(field, values)
    except _CAST_ERRORS:
        pass
    # Slow path, only on bad input: find the first value that does not convert.
    for index, value in enumerate(values):
        try:
            _cast(field, [value])
        except _CAST_ERRORS:
            raise SourceDataError(
                f"{entity.source}.{entity.name}: field {field.name!r} of row {index} "
                f"({_row_key(entity, rows[index])}) has value {value!r}, which is not a valid "
                f"{field.type}"
            ) from None
    raise SourceDataError(f"{entity.source}.{entity.name}: field {field.name!r} cannot be read")


def _check_fields(entity: Entity, present: set[str]) -> list[str]:
    """Return the unknown fields; raise on a missing required field."""
    known = set(entity.field_names)
    unknown = sorted(present - known)
    missing = [f for f in entity.required_fields if f not in present]
    if missing:
        hint = f" (new fields served instead: {', '.join(unknown)})" if unknown else ""
        raise SourceSchemaError(
            f"{entity.source}.{entity.name}: required field {missing[0]!r} is missing from "
            f"the rows served{hint}. The load stopped; nothing of this run was written. "
            "Fix the source or update the contract in ops_warehouse/contracts.py."
        )
    return unknown


def rows_to_arrow(entity: Entity, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows (dicts, as served) → Arrow table with the contract's columns, then any new ones."""
    schema = arrow_schema(entity)
    if not rows:
        return schema.empty_table()
    present: set[str] = set()
    for row in rows:
        present.update(row.keys())
    unknown = _check_fields(entity, present)
    if unknown:
        log.warning(
            "schema drift in %s.%s: new field(s) %s loaded as text",
            entity.source,
            entity.name,
            ", ".join(unknown),
        )
    columns = [
        _convert_column(entity, f, [row.get(f.name) for row in rows], rows) for f in entity.fields
    ]
    names = list(entity.field_names)
    for name in unknown:
        values = [row.get(name) for row in rows]
        columns.append(
            pa.array(
                [v if v is None or isinstance(v, str) else json.dumps(v) for v in values],
                pa.string(),
            )
        )
        names.append(name)
    return pa.Table.from_arrays(columns, names=names)


def columns_to_arrow(entity: Entity, names: list[str], columns: list[list[Any]]) -> pa.Table:
    """Column lists (as read from a database) → Arrow table with the contract's types."""
    by_name = dict(zip(names, columns, strict=True))
    unknown = _check_fields(entity, set(names))
    if not columns or not columns[0]:
        return arrow_schema(entity).empty_table()
    n = len(columns[0])
    lazy_rows = _LazyRows(names, columns, n)
    arrays = []
    for f in entity.fields:
        values = by_name[f.name]
        if f.type == "timestamp":
            arrays.append(
                pa.array(values, pa.timestamp("us")).cast(ARROW_TYPES["timestamp"])
                if values and getattr(_first(values), "tzinfo", None) is None
                else pa.array(values, ARROW_TYPES["timestamp"])
            )
        elif f.type in ("decimal", "date", "float", "int", "bool"):
            try:
                arrays.append(pa.array(values, ARROW_TYPES[f.type]))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                arrays.append(_convert_column(entity, f, list(values), lazy_rows))
        else:
            arrays.append(_convert_column(entity, f, list(values), lazy_rows))
    out_names = list(entity.field_names)
    for name in unknown:
        arrays.append(pa.array([None if v is None else str(v) for v in by_name[name]], pa.string()))
        out_names.append(name)
    return pa.Table.from_arrays(arrays, names=out_names)


def _first(values: list[Any]) -> Any:
    return next((v for v in values if v is not None), None)


class _LazyRows(Sequence):
    """Rows of a column batch, built only when an error message needs one."""

    def __init__(self, names: list[str], columns: list[list[Any]], n: int) -> None:
        self._names, self._columns, self._n = names, columns, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        return {name: col[index] for name, col in zip(self._names, self._columns, strict=True)}
