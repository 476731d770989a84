"""Small helpers for the files that publish and the Parquet export write in place of others:
flush them to disk, and name them in DuckDB SQL."""

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
