"""Small helpers for the files that publish and the Parquet export write in place of others:
flush them to disk, name them in DuckDB SQL, and attach one while it may be replaced."""

from __future__ import annotations

import os
from pathlib import Path


def sql_literal(path: Path) -> str:
    """A path as the text of a single-quoted SQL string literal (quotes doubled)."""
    return str(path).replace("'", "''")


def fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk, so a crash cannot publish a torn file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_identity(path: Path) -> tuple[int, int, int]:
    """What changes when a publish replaces the file: device, inode, modification time."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_mtime_ns


# attempts before a reader gives up; each failed one means a publish fell inside the attach
ATTACH_ATTEMPTS = 5


def attach_read_only(con, path: Path, alias: str) -> None:
    """Attach the DuckDB file at ``path`` read-only as ``alias`` on ``con``, all of it from
    one file, while a publish may replace the file (``os.replace``) at any moment.

    DuckDB opens a file by its path three times to attach it: its magic bytes, its headers,
    then its blocks at the addresses the headers give. A replace between the second and the
    third open makes it read the new file's blocks at the old file's addresses: a
    "Serialization Error" (twice in 3,000 attaches made during 1,500 replaces of a small
    file), or a catalog read from the wrong place. The file's identity is taken before and
    after: when it changed, a replace fell inside the attach, which is undone and made
    again (docs/decisions.md "Publishing on DuckDB")."""
    import duckdb

    for attempt in range(1, ATTACH_ATTEMPTS + 1):
        before = file_identity(path)
        try:
            con.execute(f"attach '{sql_literal(path)}' as {alias} (read_only)")
        except duckdb.Error:
            if attempt == ATTACH_ATTEMPTS or file_identity(path) == before:
                raise
            continue
        if file_identity(path) == before:
            return
        con.execute(f"detach {alias}")
    raise OSError(
        f"{path} was replaced during each of {ATTACH_ATTEMPTS} attempts to open it: "
        "publishes are following each other faster than it can be opened"
    )
