"""Row-level rules of docs/quality.md: which rows go to quarantine, and why.

Checked on typed Arrow columns (vectorised): a missing primary key, a missing required
field, a value outside its allowed set, negative money or counts, clicks above
impressions, a timestamp after the run's interval end + 1 day. Unreadable values were
already marked by the conversion. The first broken rule of a row is its reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from ops_warehouse.pipeline.contracts import Entity

# Numbers that may legitimately be negative: none in the current contract.
SIGNED_FIELDS: frozenset[str] = frozenset()


def future_limit_for(window_end: datetime) -> datetime:
    return window_end + timedelta(days=1)


def _rules(entity: Entity, table: pa.Table, future_limit: datetime):
    """(mask, reason) pairs: mask is true where the row breaks the rule."""
    for key in entity.primary_key:
        yield pc.is_null(table[key]), f"primary key field {key!r} is missing"
    for f in entity.fields:
        if not f.nullable and f.name not in entity.primary_key:
            yield pc.is_null(table[f.name]), f"required field {f.name!r} is missing"
    for name, allowed in (entity.allowed or {}).items():
        column = table[name]
        outside = pc.invert(pc.is_in(column, value_set=pa.array(allowed, column.type)))
        yield pc.and_(outside, pc.is_valid(column)), f"field {name!r} is outside {list(allowed)}"
    for f in entity.fields:
        if f.type in ("int", "decimal", "float") and f.name not in SIGNED_FIELDS:
            if f.name.endswith("_id"):
                continue
            zero = pa.scalar(0, table[f.name].type)
            yield pc.less(table[f.name], zero), f"field {f.name!r} is negative"
    if {"clicks", "impressions"} <= set(table.column_names):
        yield pc.greater(table["clicks"], table["impressions"]), "clicks exceed impressions"
    for f in entity.fields:
        if f.type == "timestamp":
            limit = pa.scalar(future_limit, table[f.name].type)
            yield pc.greater(table[f.name], limit), f"field {f.name!r} is in the future"
        elif f.type == "date" and f.name == entity.cursor:
            # event dates only: a campaign's planned start/end may lie ahead
            limit = pa.scalar(future_limit.date(), table[f.name].type)
            yield pc.greater(table[f.name], limit), f"field {f.name!r} is in the future"


def duplicate_key_rows(entity: Entity, table: pa.Table) -> dict[int, str]:
    """Rows whose primary key appears more than once in the batch with different content.

    Exact copies are not an error (the merge keeps one); differing copies are ambiguous and
    all go to quarantine.
    """
    keys = list(entity.primary_key)
    if table.num_rows < 2:
        return {}
    counts = table.select(keys).group_by(keys).aggregate([([], "count_all")])
    dupes = counts.filter(pc.greater(counts["count_all"], 1))
    if dupes.num_rows == 0:
        return {}
    wanted = {tuple(r[k] for k in keys) for r in dupes.select(keys).to_pylist()}
    rows = table.to_pylist()
    groups: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        key = tuple(row[k] for k in keys)
        if key in wanted:
            groups.setdefault(key, []).append(index)
    out: dict[int, str] = {}
    for indexes in groups.values():
        contents = {repr(sorted(rows[i].items())) for i in indexes}
        if len(contents) > 1:
            for i in indexes:
                out[i] = "primary key duplicated within one load with different content"
    return out


def row_reasons(
    entity: Entity, table: pa.Table, reasons: list[str | None], future_limit: datetime
) -> list[str | None]:
    """The first rule each row breaks (conversion failures first), or None."""
    out = list(reasons)
    for index, reason in duplicate_key_rows(entity, table).items():
        out[index] = out[index] or reason
    for mask, reason in _rules(entity, table, future_limit):
        flagged = pc.fill_null(mask, False)
        if not pc.any(flagged).as_py():
            continue
        for index in pc.indices_nonzero(flagged).to_pylist():
            if out[index] is None:
                out[index] = reason
    return out
