"""Rebuild the working warehouse's raw layer from the raw archive (``ops rebuild``).

For each source, every archived load is read back in load order and loaded into
``raw_<source>`` through the source's dlt pipeline, with the same primary keys and merge
hints as a load: of the versions of a row, the one of the latest load wins (within one
load, the newest cursor value, as dlt's ``dedup_sort`` does). The latest version of each key
is picked in DuckDB before dlt sees it, so the rebuild is one load per source. Each
entity's resource state (its cursor) is restored from its latest archived load, so the next
incremental load continues where the archive ends. On DuckDB, orphans are then swept into
quarantine, as the ingest task does after each load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.files import sql_literal
from ops_warehouse.pipeline.audit import record_raw_removal
from ops_warehouse.pipeline.contracts import (
    SOURCES,
    Entity,
    entities_of,
    raw_schema,
    raw_staging_schema,
    raw_table,
)
from ops_warehouse.pipeline.loading import (
    LOAD_BATCH_ROWS,
    QUARANTINE_TABLE,
    _pipeline,
    _primary_key,
    _unwrapped,
    delete_loaded_packages,
    quarantine_hints,
    raw_counts,
    resource_hints,
)
from ops_warehouse.pipeline.raw_archive import QUARANTINE, ROWS, Archive, ArchivedLoad
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.engines import configure_duckdb, engine

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


class RebuildRefused(OpsWarehouseError):
    """The rebuild would overwrite raw data, or there is no archive to rebuild from."""


@dataclass
class EntityRebuild:
    loads: int = 0
    rows_archived: int = 0
    rows_restored: int = 0
    quarantined: int = 0
    raw_rows: int = 0


@dataclass
class SourceRebuild:
    source: str
    loads: int = 0
    seconds: float = 0.0
    entities: dict[str, EntityRebuild] = field(default_factory=dict)


def rebuild(
    settings: Settings,
    *,
    sources: tuple[str, ...] = SOURCES,
    force: bool = False,
    progress: Progress = lambda message: None,
) -> list[SourceRebuild]:
    """Recreate ``raw_<source>`` of each source the archive holds. Refuses while raw still
    holds rows, unless ``force`` (then raw is replaced)."""
    archive = Archive.of(settings)
    if archive is None:
        raise RebuildRefused(
            "OPS_RAW_ARCHIVE_DIR is 'off': there is no raw archive to rebuild from. Point "
            "it at the archive's folder or URL."
        )
    archived = {source: archive.loads(source) for source in sources}
    archived = {source: loads for source, loads in archived.items() if loads}
    if not archived:
        raise RebuildRefused(
            f"the raw archive {archive.url} holds no load of {', '.join(sources)}: nothing "
            "to rebuild from. Check OPS_RAW_ARCHIVE_DIR."
        )
    held = {
        raw_table(source, table): n
        for source in archived
        for table, n in _raw_rows(settings, source).items()
        if n
    }
    if held and not force:
        listed = ", ".join(f"{name} ({n:,} rows)" for name, n in sorted(held.items())[:3])
        more = f" and {len(held) - 3} more table(s)" if len(held) > 3 else ""
        raise RebuildRefused(
            f"the working warehouse still has raw data: {listed}{more}. A rebuild replaces "
            "raw with the archive's contents; run `ops rebuild --force` to do so."
        )
    results = []
    for source, loads in archived.items():
        _drop_raw(settings, source)
        results.append(_rebuild_source(settings, archive, source, loads, progress))
    if archived:
        from ops_warehouse.pipeline.quarantine import sweep

        window_end = max(
            datetime.fromisoformat(load.manifest["window_end"])
            for loads in archived.values()
            for entity_loads in loads.values()
            for load in entity_loads
        )
        moved = sum(sweep(settings, as_of_end=window_end, run_id="rebuild").values())
        progress(f"swept {moved:,} orphan row(s) into quarantine, as of {window_end:%Y-%m-%d}")
    return results


def _raw_rows(settings: Settings, source: str) -> dict[str, int]:
    """Rows of each raw table of ``source``, quarantine included."""
    from ops_warehouse.warehouse.queries import query

    if not engine(settings).working_exists():
        return {}
    counts = raw_counts(settings, source)
    schema = raw_schema(source)
    if query(
        settings,
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, QUARANTINE_TABLE],
    )[0][0]:
        counts[QUARANTINE_TABLE] = query(
            settings, f"select count(*) from {schema}.{QUARANTINE_TABLE}"
        )[0][0]
    return counts


def _drop_raw(settings: Settings, source: str) -> None:
    """Start ``raw_<source>`` and the source's dlt pipeline from nothing."""
    with engine(settings).transaction() as db:
        for schema in (raw_schema(source), raw_staging_schema(source)):
            db.execute(f'drop schema if exists "{schema}" cascade')
        # what the archive no longer holds leaves staging at the next build
        for entity in entities_of(source):
            record_raw_removal(db, raw_table(source, entity.name), None, "rebuilt from the archive")
    _pipeline(source, settings).drop()


def _rebuild_source(
    settings: Settings,
    archive: Archive,
    source: str,
    loads: dict[str, list[ArchivedLoad]],
    progress: Progress,
) -> SourceRebuild:
    started = time.monotonic()
    summary = SourceRebuild(
        source, loads=len({load.load_id for ls in loads.values() for load in ls})
    )
    progress(f"{source}: {summary.loads} archived load(s) of {len(loads)} entities")
    pipeline = _pipeline(source, settings)
    for entity in entities_of(source):
        if entity.name not in loads:
            continue
        stats = summary.entities[entity.name] = EntityRebuild(
            loads=len(loads[entity.name]),
            rows_archived=sum(load.rows(ROWS) for load in loads[entity.name]),
        )
        # one entity at a time: each picks its latest versions in a DuckDB of its own
        _unwrapped(
            pipeline.extract,
            _archived_resource(settings, archive, entity, loads[entity.name], stats),
        )
        progress(
            f"{source}.{entity.name}: {stats.rows_restored:,} rows "
            f"(latest versions of {stats.rows_archived:,} archived in {stats.loads} load(s))"
        )
    progress(f"{source}: loading into raw_{source} …")
    _unwrapped(pipeline.normalize)
    _unwrapped(pipeline.load, raise_on_failed_jobs=True)
    delete_loaded_packages(pipeline)
    for name, count in raw_counts(settings, source).items():
        if name in summary.entities:
            summary.entities[name].raw_rows = count
    summary.seconds = time.monotonic() - started
    return summary


def _archived_resource(
    settings: Settings,
    archive: Archive,
    entity: Entity,
    loads: list[ArchivedLoad],
    stats: EntityRebuild,
):
    import dlt

    to_quarantine = quarantine_hints()

    @dlt.resource(**resource_hints(entity))
    def rows() -> Iterator[pa.Table]:
        state = dlt.current.resource_state()
        state.clear()
        state.update(loads[-1].manifest["state"])
        order = [f'"{entity.cursor}" desc'] if entity.cursor else []
        current = _current_loads(entity, loads)
        for table in latest_versions(settings, archive, current, ROWS, _primary_key(entity), order):
            stats.rows_restored += table.num_rows
            yield table
        key = ["entity", "record_key", "reason", "payload"]
        for table in latest_versions(settings, archive, loads, QUARANTINE, key, []):
            stats.quarantined += table.num_rows
            yield dlt.mark.with_hints(table, to_quarantine, create_table_variant=True)

    return rows()


def _current_loads(entity: Entity, loads: list[ArchivedLoad]) -> list[ArchivedLoad]:
    """The loads whose rows make up raw now: of a landing sheet, its latest snapshot (and
    anything archived after it); of every other entity, all of them."""
    snapshots = [i for i, load in enumerate(loads) if load.manifest.get("snapshot")]
    return loads[snapshots[-1] :] if snapshots and entity.mode == "files" else loads


def latest_versions(
    settings: Settings,
    archive: Archive,
    loads: list[ArchivedLoad],
    kind: str,
    key: list[str],
    order: list[str],
) -> Iterator[pa.Table]:
    """The archived rows of one kind, one per key: the latest load's, then the first of
    ``order`` within a load. Streamed in tables of ``LOAD_BATCH_ROWS``."""
    import duckdb

    files = [
        (path, load_seq, part_seq)
        for load_seq, load in enumerate(loads)
        for part_seq, path in enumerate(load.files(kind))
    ]
    if not files:
        return
    spill = settings.home / "tmp" / "rebuild"
    spill.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        configure_duckdb(con, settings)
        # the folder may be any path, so it is quoted
        con.execute(f"set temp_directory = '{sql_literal(spill)}'")
        paths = archive.duckdb_paths(con, [f[0] for f in files])
        con.register(
            "_archive_files",
            pa.table(
                {
                    "_archive_file": paths,
                    "_load_seq": [f[1] for f in files],
                    "_part_seq": [f[2] for f in files],
                }
            ),
        )
        partition = ", ".join(f'"{k}"' for k in key)
        ordering = ", ".join(["_load_seq desc", *order, "_part_seq desc"])
        relation = con.sql(
            "select * exclude (_archive_file, _load_seq, _part_seq) from read_parquet("
            "$paths, filename = '_archive_file', union_by_name = true) "
            "join _archive_files using (_archive_file) "
            f"qualify row_number() over (partition by {partition} order by {ordering}) = 1",
            params={"paths": paths},
        )
        for batch in relation.to_arrow_reader(LOAD_BATCH_ROWS):
            yield pa.Table.from_batches([batch])
