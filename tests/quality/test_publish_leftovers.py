"""A publish killed half-way leaves its temporary copy beside the published file; the next
publish deletes it, and only files of that pattern."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import uuid

import pytest

from ops_warehouse.pipeline import audit
from ops_warehouse.warehouse import publish
from tests.quality.wap import working_copy

# A publish process that dies (exit without clean-up, as on SIGKILL) just before its swap.
KILLED_PUBLISH = textwrap.dedent(
    """
    import os, pickle, sys
    from ops_warehouse.pipeline.audit import RunInfo
    from ops_warehouse.warehouse import publish

    settings = pickle.loads(open(sys.argv[1], "rb").read())
    publish.os.replace = lambda *args: os._exit(9)
    publish.publish(settings, RunInfo("transform", "killed"))
    """
)


@pytest.fixture
def settings(duckdb_marts, tmp_path):
    return working_copy(duckdb_marts, tmp_path / "home")


def test_the_next_publish_removes_what_a_killed_one_left_and_nothing_else(settings, tmp_path):
    folder = settings.published_path.parent
    pickled = tmp_path / "settings.pickle"
    pickled.write_bytes(pickle.dumps(settings))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_PUBLISH, str(pickled)], capture_output=True, text=True
    )
    assert killed.returncode == 9, killed.stderr[-2000:]
    leftovers = sorted(p.name for p in folder.glob(f".{settings.published_path.name}.*.next*"))
    assert leftovers, "the killed publish left its temporary copy"
    assert not settings.published_path.exists()
    # a WAL of such a copy, as DuckDB leaves one when killed mid-write
    wal = folder / f".{settings.published_path.name}.{uuid.uuid4().hex}.next.wal"
    wal.write_bytes(b"\0" * 64)
    unrelated = [
        folder / "notes.txt",
        folder / f"{settings.published_path.name}.bak",
        folder / f".{settings.published_path.name}.1234.next",  # not a publish's uuid
        folder / f".other.duckdb.{uuid.uuid4().hex}.next",  # another file's name
        folder / f"x.{settings.published_path.name}.{uuid.uuid4().hex}.next",
    ]
    for path in unrelated:
        path.write_text("keep me")

    this = audit.RunInfo("transform", "after_the_crash")
    audit.record_run_start(settings, this)
    publish.publish(settings, this)

    remaining = sorted(p.name for p in folder.iterdir())
    assert remaining == sorted([settings.published_path.name, *(p.name for p in unrelated)])
    assert all(p.read_text() == "keep me" for p in unrelated)
