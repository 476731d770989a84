"""Row-level rules of docs/quality.md: which rows go to quarantine, and why.

Checked on typed Arrow columns (vectorised): a missing primary key, a missing required
field, a value outside its allowed set, text holding a NUL character, text that breaks its
field's format (a month that is not ``YYYY-MM``), a number that is not finite (NaN, infinity, an overflow), negative money or
counts, clicks above impressions, a timestamp after the run's interval end + 1 day.
Unreadable values were already marked by the conversion. The first broken rule of a row is
its reason, and it shows the offending value as the source served it (personal data
withheld).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ops_warehouse.pipeline.contracts import FREE_TEXT_FIELDS, PERSONAL_FIELDS, Entity

# Numbers that may legitimately be negative: none in the current contract.
SIGNED_FIELDS: frozenset[str] = frozenset()

# Text formats a contract field may require: the pattern its whole value must match, and
# what a reason calls it.
FORMATS: dict[str, tuple[str, str]] = {
    "month": (r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$", "a month YYYY-MM"),
}

# A reason shows at most this much of a value.
SHOWN_CHARS = 80

# (rows breaking the rule, reason, fields whose values the reason shows)
Rule = tuple[pa.Array, str, tuple[str, ...]]


def future_limit_for(window_end: datetime) -> datetime:
    return window_end + timedelta(days=1)


def shown(field: str, value: Any) -> str:
    """A value as a reason shows it: personal data and free text withheld, long text cut
    short."""
    if field in PERSONAL_FIELDS and value is not None:
        return "withheld (personal data)"
    if field in FREE_TEXT_FIELDS and value is not None:
        return "withheld (free text)"
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value) if isinstance(value, int | float | Decimal) else repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _rules(entity: Entity, table: pa.Table, future_limit: datetime) -> Iterator[Rule]:
    for key in entity.primary_key:
        yield pc.is_null(table[key]), f"primary key field {key!r} is missing", ()
    for f in entity.fields:
        if not f.nullable and f.name not in entity.primary_key:
            yield pc.is_null(table[f.name]), f"required field {f.name!r} is missing", ()
    for name, allowed in (entity.allowed or {}).items():
        column = table[name]
        outside = pc.invert(pc.is_in(column, value_set=pa.array(allowed, column.type)))
        yield (
            pc.and_(outside, pc.is_valid(column)),
            f"field {name!r} is outside {list(allowed)}",
            (name,),
        )
    for name in table.column_names:  # new fields too: PostgreSQL refuses NUL in text
        if pa.types.is_string(table[name].type):
            yield (
                pc.match_substring(table[name], "\x00"),
                f"field {name!r} contains a NUL character",
                (name,),
            )
    for f in entity.fields:
        if f.format is not None:
            pattern, what = FORMATS[f.format]
            wrong = pc.invert(pc.match_substring_regex(table[f.name], pattern))
            yield wrong, f"field {f.name!r} is not {what}", (f.name,)
    for f in entity.fields:
        if f.type == "float":
            yield (
                pc.invert(pc.is_finite(table[f.name])),
                f"field {f.name!r} is not finite",
                (f.name,),
            )
    for f in entity.fields:
        if f.type in ("int", "decimal", "float") and f.name not in SIGNED_FIELDS:
            if f.name.endswith("_id"):
                continue
            zero = pa.scalar(0, table[f.name].type)
            yield pc.less(table[f.name], zero), f"field {f.name!r} is negative", (f.name,)
    if {"clicks", "impressions"} <= set(table.column_names):
        yield (
            pc.greater(table["clicks"], table["impressions"]),
            "clicks exceed impressions",
            ("clicks", "impressions"),
        )
    for f in entity.fields:
        if f.type == "timestamp":
            limit = pa.scalar(future_limit, table[f.name].type)
            yield pc.greater(table[f.name], limit), f"field {f.name!r} is in the future", (f.name,)
        elif f.type == "date" and f.name == entity.cursor:
            # event dates only: a campaign's planned start/end may lie ahead
            limit = pa.scalar(future_limit.date(), table[f.name].type)
            yield pc.greater(table[f.name], limit), f"field {f.name!r} is in the future", (f.name,)


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
    entity: Entity,
    table: pa.Table,
    reasons: list[str | None],
    future_limit: datetime,
    served: Callable[[int], dict[str, Any]] | None = None,
) -> list[str | None]:
    """The first rule each row breaks (conversion failures first), or None. A reason shows
    the values it is about as ``served`` gives the row (else as typed)."""
    out = list(reasons)
    for index, reason in duplicate_key_rows(entity, table).items():
        out[index] = out[index] or reason
    for mask, reason, fields in _rules(entity, table, future_limit):
        flagged = pc.fill_null(mask, False)
        if not pc.any(flagged).as_py():
            continue
        for index in pc.indices_nonzero(flagged).to_pylist():
            if out[index] is not None:
                continue
            if not fields:
                out[index] = reason
                continue
            row = served(index) if served else {n: table[n][index].as_py() for n in fields}
            if len(fields) == 1:
                out[index] = f"{reason} (value {shown(fields[0], row.get(fields[0]))})"
            else:
                values = ", ".join(f"{n} {shown(n, row.get(n))}" for n in fields)
                out[index] = f"{reason} ({values})"
    return out
