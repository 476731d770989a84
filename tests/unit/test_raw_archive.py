"""The raw archive: every committed load lands once as Parquet, and `rebuild` recreates raw
from it, cursors included, without asking the sources again."""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from ops_warehouse.pipeline.loading import LoadSummary, QuarantineThresholdExceeded, load_source
from ops_warehouse.pipeline.raw_archive import MANIFEST, STAGING, Archive
from ops_warehouse.pipeline.rebuild import RebuildRefused, rebuild
from tests.conftest import (
    UNTIL,
    drop_pg_database,
    make_settings,
    postgres_settings,
    scratch_pg_database,
)
from tests.helpers import day_window, raw_snapshot, source_snapshot

SOURCES = ("marketing", "sales", "support")

# A ticket whose priority the contract does not allow: quarantined, and in a small world one
# bad row is far above the 1 % threshold.
BAD_TICKET = {
    "ticket_id": 990001,
    "requester_email": "a@example.com",
    "subject": "s",
    "category": "billing",
    "channel": "email",
    "priority": "critical",
    "status": "open",
    "assignee_id": None,
    "created_at": "2026-11-21T08:00:00Z",
    "updated_at": "2026-11-21T08:00:00Z",
}


def load_all(settings, day=UNTIL) -> dict[str, LoadSummary]:
    return {
        source: load_source(source, day_window(day), settings=settings, run_id=f"test__{day}")
        for source in SOURCES
    }


def archive_files(settings) -> list[str]:
    """Every published file of the archive (staging left out), relative to its root."""
    archive = Archive.of(settings)
    if not archive.fs.exists(archive.root):
        return []
    prefix = len(archive.root) + 1
    return sorted(
        path[prefix:]
        for path in archive.fs.find(archive.root)
        if not path[prefix:].startswith(f"{STAGING}/")
    )


def assert_raw_equals_source(settings, world_dir) -> None:
    source, raw = source_snapshot(world_dir), raw_snapshot(settings)
    for name, rows in source.items():
        assert raw.get(name) == rows, f"raw {name} differs from the source"


def lose_and_rebuild(settings, world_dir) -> None:
    """Raw and dlt's local state are gone; the archive is all that is left."""
    if settings.warehouse == "duckdb":
        settings.warehouse_path.unlink()
    else:
        name = settings.postgres_url.rsplit("/", 1)[1]
        scratch_pg_database(name)  # dropped and created empty
    shutil.rmtree(settings.dlt_dir)
    results = rebuild(settings)
    assert {r.source for r in results} == set(SOURCES)
    assert all(e.raw_rows > 0 for r in results for e in r.entities.values())
    assert_raw_equals_source(settings, world_dir)


def test_rebuild_from_archive_equals_source_and_cursors_continue(tmp_path, world_dir, server):
    """Rebuilt from its archive, then the next day loaded on it and on a warehouse that never
    lost anything: the same rows are read (the cursors continue where the archive ends) and
    raw equals the advanced source."""
    from ops_demo import world

    settings = make_settings(tmp_path / "home", world_dir, server.url)
    reference = make_settings(tmp_path / "reference", world_dir, server.url, raw_archive_dir="off")
    load_all(settings)
    load_all(reference)
    lose_and_rebuild(settings, world_dir)
    world.advance(world_dir, days=1)
    rebuilt = load_all(settings, UNTIL + timedelta(days=1))
    kept = load_all(reference, UNTIL + timedelta(days=1))
    for source in SOURCES:
        for name, stats in rebuilt[source].entities.items():
            assert stats.rows_read == kept[source].entities[name].rows_read, name
    assert rebuilt["sales"].entities["orders"].rows_read < len(raw_snapshot(settings)["orders"])
    assert_raw_equals_source(settings, world_dir)


def test_rebuild_on_postgres_from_an_fsspec_archive(tmp_path, world_dir, server):
    from ops_demo import world

    name = f"ops_archive_{uuid.uuid4().hex[:8]}"
    settings = postgres_settings(
        tmp_path / "home",
        world_dir,
        server.url,
        name,
        raw_archive_dir=f"memory://{name}/raw_archive",
    )
    try:
        load_all(settings)
        lose_and_rebuild(settings, world_dir)
        world.advance(world_dir, days=1)
        load_all(settings, UNTIL + timedelta(days=1))
        assert_raw_equals_source(settings, world_dir)
        # on PostgreSQL too, rows raw already holds are not archived again
        archived = archive_files(settings)
        assert any(f.startswith("sales/orders/") for f in archived)
        load_all(settings, UNTIL + timedelta(days=1))
        assert archive_files(settings) == archived
    finally:
        drop_pg_database(name)
        Archive.of(settings).fs.rm(f"/{name}", recursive=True)


def test_ops_rebuild_refuses_while_raw_holds_data_unless_forced(
    settings, world_dir, monkeypatch, capsys
):
    from ops_warehouse import cli

    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    load_source("sales", day_window(UNTIL), settings=settings)
    with pytest.raises(RebuildRefused) as err:
        rebuild(settings)
    assert "raw_sales.customers" in str(err.value) and "--force" in str(err.value)
    assert cli.main(["rebuild"]) == 1
    assert cli.main(["rebuild", "--force"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "sales.orders" in out and "ops transform" in out
    assert raw_snapshot(settings)["orders"] == source_snapshot(world_dir)["orders"]


def assert_no_dictionary_pages(settings, files: list[str]) -> None:
    """The archive writes its columns plain (raw_archive._ParquetPart): no column chunk of
    any file starts with a dictionary page."""
    import pyarrow.parquet as pq

    archive = Archive.of(settings)
    assert files
    for name in files:
        with archive.fs.open(f"{archive.root}/{name}", "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
        for group in range(meta.num_row_groups):
            for column in range(meta.num_columns):
                chunk = meta.row_group(group).column(column)
                assert not chunk.has_dictionary_page, (name, chunk.path_in_schema)


def test_rerun_of_same_interval_adds_no_archive_file(settings):
    load_all(settings)
    first = archive_files(settings)
    entities = {tuple(f.split("/")[:2]) for f in first if f.endswith(MANIFEST)}
    assert len(entities) == 15, entities
    assert_no_dictionary_pages(settings, [f for f in first if f.endswith(".parquet")])
    rerun = load_all(settings)
    # the rerun does read rows again: the cursors' inclusive bound, ad performance's
    # look-back days, and the sheets, campaigns and agents read whole
    for source, name in (
        ("marketing", "ad_performance"),
        ("marketing", "budget"),
        ("marketing", "campaigns"),
        ("sales", "orders"),
        ("support", "agents"),
    ):
        assert rerun[source].entities[name].rows_read > 0, name
    assert archive_files(settings) == first


def test_failed_load_leaves_no_archive_file(settings, server):
    server.configure(bad_rows={"tickets": [BAD_TICKET]})
    with pytest.raises(QuarantineThresholdExceeded):
        load_source("support", day_window(UNTIL), settings=settings)
    assert archive_files(settings) == []
    archive = Archive.of(settings)
    staging = Path(archive.root) / STAGING / "support"
    assert not list(staging.glob("*/tickets")), "the failing entity keeps no staged file"
    server.configure(bad_rows={})
    load_source("support", day_window(UNTIL), settings=settings)
    files = archive_files(settings)
    assert any(f.startswith("support/tickets/") and f.endswith(".parquet") for f in files)
    # what the failed load's other entities staged is gone once a later load committed
    assert not staging.exists() or not any(staging.iterdir())
