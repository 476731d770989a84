"""A reader attaching the published DuckDB file while a publish replaces it gets one whole
file, old or new (ops_warehouse.files.attach_read_only).

DuckDB opens the file by path three times to attach it; a replace between the opens made it
read the new file's blocks at the old file's addresses ("Serialization Error: field id
mismatch"), about twice in 3,000 attaches. The race itself is too rare to provoke on demand,
so these tests replace the file inside the attach call, where the race falls, and check
that the reader notices and attaches again.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from ops_warehouse.files import ATTACH_ATTEMPTS, attach_read_only


def _database(path: Path, generation: int) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute(f"create table t as select {generation} as generation")
    return path


class ReplacedDuringAttach:
    """A DuckDB connection whose next ``attach`` statements each see the file replaced by a
    new generation in the middle: before the attach (so DuckDB opens the new file, as when
    the replace falls before its first open), or after it (so the attach read the file that
    was there, as when the replace falls between DuckDB's opens). ``fail`` makes the attach
    raise the error DuckDB raises when its opens straddle the replace."""

    def __init__(self, path: Path, replaces: int, fail: bool = False):
        self.con = duckdb.connect(":memory:")
        self.path, self.replaces, self.fail = path, replaces, fail
        self.attaches = 0

    def _replace(self) -> None:
        generation = self.attaches + 100
        staged = _database(self.path.with_name(f"next{generation}.duckdb"), generation)
        os.replace(staged, self.path)

    def execute(self, sql: str):
        if not sql.startswith("attach"):
            return self.con.execute(sql)
        self.attaches += 1
        if self.attaches > self.replaces:
            return self.con.execute(sql)
        if self.fail:
            self._replace()
            raise duckdb.SerializationException(
                "Serialization Error: Failed to deserialize: field id mismatch, expected: 100,"
                " got: 0"
            )
        result = self.con.execute(sql)
        self._replace()
        return result


def _generation(con: ReplacedDuringAttach) -> int:
    return con.con.execute("select generation from published.t").fetchone()[0]


def test_a_replace_during_the_attach_attaches_the_new_file(tmp_path):
    path = _database(tmp_path / "published.duckdb", 1)
    con = ReplacedDuringAttach(path, replaces=1)
    attach_read_only(con, path, "published")
    # the first attach read the old file while it was replaced: undone, and the new one read
    assert con.attaches == 2
    assert _generation(con) == 101
    attached = con.con.execute(
        "select count(*) from duckdb_databases() where database_name = 'published'"
    ).fetchone()[0]
    assert attached == 1


def test_an_attach_that_failed_because_the_file_was_replaced_is_made_again(tmp_path):
    path = _database(tmp_path / "published.duckdb", 1)
    con = ReplacedDuringAttach(path, replaces=2, fail=True)
    attach_read_only(con, path, "published")
    assert con.attaches == 3
    assert _generation(con) == 102


def test_an_attach_error_without_a_replace_is_raised_at_once(tmp_path):
    path = tmp_path / "published.duckdb"
    path.write_bytes(b"not a database" * 1000)
    con = ReplacedDuringAttach(path, replaces=0)
    with pytest.raises(duckdb.Error):
        attach_read_only(con, path, "published")
    assert con.attaches == 1


def test_a_file_replaced_during_every_attempt_gives_up_with_a_clear_error(tmp_path):
    path = _database(tmp_path / "published.duckdb", 1)
    con = ReplacedDuringAttach(path, replaces=ATTACH_ATTEMPTS)
    with pytest.raises(OSError, match="replaced during each of"):
        attach_read_only(con, path, "published")
    assert con.attaches == ATTACH_ATTEMPTS
