"""The ops team's landing sheets: CSV files in ``OPS_LANDING_DIR``, read as snapshots.

Every load reads every current ``<entity>_<YYYY-MM-DD>….csv`` (raw then holds exactly their
rows: a corrected file replaces its rows, a removed file's rows leave raw). Each file is
checked before any of its rows is handed on, in two streaming passes of bounded memory:

1. without reading a byte of it: a regular file inside the folder (a symbolic link, a folder
   or a pipe is refused), a name carrying its date, at most ``SHEET_MAX_BYTES``;
2. a first pass over its lines: UTF-8 (a byte-order mark, as Excel's "CSV UTF-8" writes it,
   is dropped; any other encoding stops the load naming the file and line), lines of at most
   ``SHEET_MAX_LINE_BYTES``, well-formed CSV, a header with every required column once and
   no column name raw could not keep, at most ``SHEET_MAX_ROWS`` rows, and the rows whose key
   appears again with other content;
3. a second pass turns the rows into batches of ``SHEET_BATCH_ROWS``, where the row-level
   rules send bad rows to quarantine naming file, line, field and value.

A file that breaks 1 or 2 stops the load (a permanent error naming the file, and the line
where there is one); nothing of the run is written.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from ops_warehouse.errors import SourceConfigError, SourceDataError, SourceSchemaError
from ops_warehouse.pipeline.contracts import (
    SHEET_MAX_BYTES,
    SHEET_MAX_LINE_BYTES,
    SHEET_MAX_ROWS,
    SHEET_NAME_PATTERN,
    Entity,
)
from ops_warehouse.pipeline.sources.arrow_rows import Batch, Origin, check_names, rows_to_batch
from ops_warehouse.pipeline.sources.rules import shown
from ops_warehouse.pipeline.sources.window import Window

# Rows per batch handed on: memory stays bounded whatever the file's length.
SHEET_BATCH_ROWS = 10_000

_STOPPED = "The load stopped; nothing of this run was written."


def read_sheets(landing_dir: Path, entity: Entity, window: Window) -> Iterator[Batch]:
    """Every current sheet of ``entity``, each row tagged with its file name.

    Which file wins for a month is decided in staging (the newest file covering it).
    """
    for path in sheet_paths(landing_dir, entity):
        yield from _read_sheet(path, entity, window)


def sheet_paths(landing_dir: Path, entity: Entity) -> list[Path]:
    """The sheets of ``entity`` in the landing folder, each checked without reading it."""
    if not landing_dir.is_dir():
        raise SourceConfigError(
            f"{entity.source}.{entity.name}: the landing folder {landing_dir} does not exist or is "
            "not a folder. Check the setting OPS_LANDING_DIR (an empty folder means no sheets)."
        )
    pattern = re.compile(SHEET_NAME_PATTERN.format(entity=re.escape(entity.name)))
    paths = sorted(landing_dir.glob(f"{entity.name}_*.csv"))
    for path in paths:
        sheet = f"{_sheet(entity, path)} in the landing folder {landing_dir}"
        _check_file(os.lstat(path), sheet)
        match = pattern.fullmatch(path.name)
        if match is None or not _is_date(match.group(1)):
            raise SourceDataError(
                f"{sheet} is not named {entity.name}_<YYYY-MM-DD>.csv (a real date, then "
                "optionally letters, digits, '_', '-' or '.'): the date decides which file wins "
                f"for a month. Rename the file. {_STOPPED}"
            )
    return paths


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _check_file(st: os.stat_result, sheet: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise SourceDataError(
            f"{sheet} is a symbolic link: only regular files inside the landing folder are "
            f"read, and nothing of it was. Put the file itself there. {_STOPPED}"
        )
    if not stat.S_ISREG(st.st_mode):
        raise SourceDataError(
            f"{sheet} is not a regular file (a folder, pipe or device): nothing of it was "
            f"read. Remove it from the landing folder. {_STOPPED}"
        )
    if st.st_size > SHEET_MAX_BYTES:
        raise SourceDataError(
            f"{sheet} has {st.st_size:,} bytes, more than a sheet may have "
            f"({SHEET_MAX_BYTES:,}): nothing of it was read. Split or trim the file. {_STOPPED}"
        )


def _open(path: Path, sheet: str) -> IO[bytes]:
    """The file opened without following a link, checked again once open (it may have been
    replaced since it was listed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise SourceDataError(f"{sheet} cannot be opened ({exc.strerror}). {_STOPPED}") from None
    try:
        _check_file(os.fstat(fd), sheet)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _read_sheet(path: Path, entity: Entity, window: Window) -> Iterator[Batch]:
    conflicts = _scan(path, entity)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    reasons: list[str | None] = []
    for line, row, reason in _rows(path, entity):
        rows.append(row)
        lines.append(line)
        reasons.append(reason or conflicts.get(_key(entity, row)))
        if len(rows) == SHEET_BATCH_ROWS:
            yield _batch(entity, path, rows, lines, reasons, window)
            rows, lines, reasons = [], [], []
    if rows:
        yield _batch(entity, path, rows, lines, reasons, window)


def _batch(
    entity: Entity,
    path: Path,
    rows: list[dict[str, Any]],
    lines: list[int],
    reasons: list[str | None],
    window: Window,
) -> Batch:
    batch = rows_to_batch(entity, rows, window.end, Origin(f"file {path.name}", lines), reasons)
    names = pa.array([path.name] * batch.table.num_rows, pa.string())
    batch.table = batch.table.append_column("_file_name", names)
    return batch


def _key(entity: Entity, row: dict[str, Any]) -> tuple:
    return tuple(row.get(k) for k in entity.primary_key)


def _scan(path: Path, entity: Entity) -> dict[tuple, str]:
    """The first pass: every check of the whole file. Returns the keys that rows repeat with
    other content, with the reason of each such row (all of them go to quarantine: none of
    them can be trusted). Holds a key and a hash per row, never the rows."""
    first: dict[tuple, tuple[int, int]] = {}
    conflicts: dict[tuple, str] = {}
    for line, row, _ in _rows(path, entity):
        key = _key(entity, row)
        content = hash(tuple(row.get(f) for f in entity.field_names))
        seen = first.setdefault(key, (line, content))
        if seen[1] != content and key not in conflicts:
            conflicts[key] = (
                "primary key duplicated within one load with different content "
                f"(lines {seen[0]} and {line})"
            )
    return conflicts


def _sheet(entity: Entity, path: Path) -> str:
    """How errors name a sheet."""
    return f"{entity.source}.{entity.name}: file {path.name}"


def _rows(path: Path, entity: Entity) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    """(line, row, reason) of each data row; empty cells are null, blank rows skipped. A row
    with more or fewer cells than the header has a reason (it goes to quarantine)."""
    sheet = _sheet(entity, path)
    with _open(path, sheet) as handle:
        reader = csv.reader(_lines(handle, sheet), strict=True)
        header = _header(reader, entity, path)
        width = len(header)
        count = 0
        while True:
            try:
                start = reader.line_num + 1
                cells = next(reader, None)
            except csv.Error as exc:
                raise SourceDataError(
                    f"{sheet}, line {reader.line_num}: not well-formed CSV ({exc}). Save the "
                    f"sheet as CSV UTF-8 again. {_STOPPED}"
                ) from None
            if cells is None:
                return
            if not any(cells):
                continue
            count += 1
            if count > SHEET_MAX_ROWS:
                raise SourceDataError(
                    f"{sheet} has more than {SHEET_MAX_ROWS:,} rows, more than a sheet may "
                    f"have. Split or trim the file. {_STOPPED}"
                )
            reason = None
            if len(cells) != width:
                reason = f"line has {len(cells)} cells where the header has {width} columns"
            unnamed = [c for name, c in zip(header, cells, strict=False) if name == "" and c]
            if unnamed and reason is None:
                reason = f"a cell under a column without a name holds {shown('', unnamed[0])}"
            row = {
                name: (value if value != "" else None)
                for name, value in zip(header, cells, strict=False)
                if name != ""
            }
            for name in header[len(cells) :]:
                if name != "":
                    row[name] = None
            yield start, row, reason


def _header(reader: Any, entity: Entity, path: Path) -> list[str]:
    """The header row, checked: every required column once, names raw can keep. Columns
    without a name (an export's trailing separator) are allowed while their cells are empty."""
    sheet = _sheet(entity, path)
    try:
        header = next((cells for cells in reader if any(cells)), None)
    except csv.Error as exc:
        raise SourceDataError(
            f"{sheet}, line {reader.line_num}: not well-formed CSV ({exc}). {_STOPPED}"
        ) from None
    if header is None:
        raise SourceSchemaError(
            f"{sheet} is empty: it has no header row. Remove it, or give it the header "
            f"{','.join(entity.field_names)}. {_STOPPED}"
        )
    named = [h for h in header if h != ""]
    repeated = sorted({h for h in named if named.count(h) > 1})
    if repeated:
        raise SourceSchemaError(
            f"{sheet}: column {repeated[0]!r} appears more than once in the header "
            f"({', '.join(map(repr, header))}). Fix the sheet. {_STOPPED}"
        )
    missing = [f for f in entity.required_fields if f not in named]
    if missing:
        raise SourceSchemaError(
            f"{sheet} has no column {missing[0]!r} (columns: {', '.join(map(repr, header))}). "
            f"Fix the sheet. {_STOPPED}"
        )
    check_names(entity, named, Origin(f"file {path.name}"))
    return header


def _lines(handle: IO[bytes], sheet: str) -> Iterator[str]:
    """The file's lines as text: UTF-8, a leading byte-order mark dropped, each line and the
    whole file within their limits (read line by line, never more than a line at once)."""
    total = 0
    number = 0
    while True:
        raw = handle.readline(SHEET_MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        total += len(raw)
        if total > SHEET_MAX_BYTES:
            raise SourceDataError(
                f"{sheet} grew beyond {SHEET_MAX_BYTES:,} bytes while it was read. {_STOPPED}"
            )
        if len(raw) > SHEET_MAX_LINE_BYTES:
            raise SourceDataError(
                f"{sheet}, line {number}: longer than {SHEET_MAX_LINE_BYTES:,} bytes, more "
                f"than a sheet's line may be. Fix the sheet. {_STOPPED}"
            )
        if number == 1:
            if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise SourceDataError(
                    f"{sheet} is UTF-16 (Excel's 'Unicode Text'), not UTF-8: save the sheet "
                    f"as 'CSV UTF-8' and drop it again. {_STOPPED}"
                )
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceDataError(
                f"{sheet}, line {number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at byte "
                f"{exc.start + 1} of the line; a sheet saved as Latin-1 or Windows-1252?). "
                f"Save the sheet as 'CSV UTF-8' and drop it again. {_STOPPED}"
            ) from None
