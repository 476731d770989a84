"""Load one source into the working warehouse's raw schema with dlt.

Readers yield Arrow tables typed by the contract; dlt merges them into
``raw_<source>.<entity>`` by primary key (latest version wins) and stores each entity's
cursor in its resource state, which dlt commits together with the data. A run killed
half-way leaves a pending load package that the next run finishes first, so a crashed
load resumes exactly where the last committed one ended.

Landing sheets (mode ``files``) are snapshots instead: every load reads every current file
and replaces the entity's raw table with their rows, in one transaction, so raw holds exactly
what the folder holds (a corrected file's rows replace the old ones, a removed file's rows
leave raw; earlier versions stay in the raw archive).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline import raw_archive
from ops_warehouse.pipeline.contracts import (
    DELETED_COLUMN,
    QUARANTINE_TABLE,
    Entity,
    entities_of,
    raw_schema,
    raw_staging_schema,
    raw_table,
)
from ops_warehouse.pipeline.sources import landing, marketing, sales, support
from ops_warehouse.pipeline.sources.arrow_rows import Batch
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import Settings, get_settings
from ops_warehouse.warehouse.engines import engine

log = logging.getLogger(__name__)

Reader = Callable[[Entity, dict, Window], Iterator[Batch]]

# Source pages are handed to dlt in tables of at least this many rows: dlt's cost per item
# (schema and table bookkeeping, ~5 ms) would otherwise be paid per API page of 1000 rows.
LOAD_BATCH_ROWS = 50_000


class QuarantineThresholdExceeded(OpsWarehouseError):
    """Too large a share of one entity's rows broke row-level rules: the load blocks (the
    same rows would break them again)."""

    permanent = True


class LoadStateError(OpsWarehouseError):
    """The load state in the warehouse could not be taken over by this worker."""


@dataclass
class EntityStats:
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    raw_rows: int = 0
    # rows that remove their key from raw (DELETED_COLUMN true: a ticket deleted at the source)
    rows_removing: int = 0


@dataclass
class LoadSummary:
    source: str
    window: Window
    run_id: str
    seconds: float = 0.0
    entities: dict[str, EntityStats] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return sum(s.rows_read for s in self.entities.values())


def _readers(source: str, settings: Settings, stack: ExitStack) -> dict[str, Reader]:
    """Each entity's reader, from the source's adapter: the generic contract's, or the vendor
    system the settings name (``OPS_SUPPORT_DIALECT``, ``OPS_SALES_DIALECT``,
    ``OPS_SIGNUPS_DIALECT``, ``OPS_AD_PLATFORMS``)."""
    if source == "support" and settings.support_dialect == "zendesk":
        from ops_warehouse.pipeline.sources import zendesk

        return zendesk.readers(settings, stack)
    if source == "sales" and settings.sales_dialect == "shopify":
        from ops_warehouse.pipeline.sources import shopify

        return shopify.readers(settings, stack)
    if source == "marketing":
        api = marketing.client(settings)
        readers: dict[str, Reader] = {
            "ad_performance": lambda e, s, w: marketing.read_ad_performance(api, e, s, w, settings),
            "campaigns": lambda e, s, w: marketing.read_campaigns(api, e, s, w, settings),
            "signups": lambda e, s, w: marketing.read_signups(api, e, s, w, settings),
            "budget": lambda e, s, w: landing.read_sheets(settings.landing_dir, e, w),
            "kpi_targets": lambda e, s, w: landing.read_sheets(settings.landing_dir, e, w),
        }
        if settings.signups_dialect == "hubspot":
            from ops_warehouse.pipeline.sources import hubspot

            readers.update(hubspot.readers(settings, stack))
        if settings.ad_platforms != ("generic",):
            from ops_warehouse.pipeline.sources import ad_platforms

            readers.update(ad_platforms.readers(settings, stack, readers))
        return readers
    if source == "sales":
        return sales.readers(settings, stack)
    if source == "support":
        api = support.client(settings)
        return {
            "tickets": lambda e, s, w: support.read_incremental(api, e, s, w, settings),
            "ticket_events": lambda e, s, w: support.read_incremental(api, e, s, w, settings),
            "time_entries": lambda e, s, w: support.read_incremental(api, e, s, w, settings),
            "agents": lambda e, s, w: support.read_agents(api, e, s, w, settings),
        }
    raise ValueError(f"unknown source {source!r}; expected marketing, sales or support")


def _primary_key(entity: Entity) -> list[str]:
    # Sheets keep every current file's rows; staging picks the newest file per month.
    return (
        ["_file_name", *entity.primary_key] if entity.mode == "files" else list(entity.primary_key)
    )


def takes_deletions(entity: Entity) -> bool:
    """Whether a load's rows can remove keys from the entity's raw table: a cursor entity's
    ``DELETED_COLUMN`` is a hard delete (``resource_hints``); sheets and full reads have none."""
    return entity.mode == "cursor"


def resource_hints(entity: Entity) -> dict:
    """How dlt writes an entity's raw table: merged by key, the newest cursor value winning
    among a load's duplicates; a landing sheet's table replaced by the current files' rows.
    A row whose ``DELETED_COLUMN`` is true removes its key (only a vendor adapter sets it;
    without such rows the column is never created). Loads and the rebuild from the raw
    archive share them."""
    columns = (
        {entity.cursor: {"dedup_sort": "desc"}, DELETED_COLUMN: {"hard_delete": True}}
        if takes_deletions(entity)
        else None
    )
    return dict(
        name=entity.name,
        primary_key=_primary_key(entity),
        write_disposition="replace" if entity.mode == "files" else "merge",
        columns=columns,
    )


def quarantine_hints():
    import dlt

    return dlt.mark.make_hints(
        table_name=QUARANTINE_TABLE,
        primary_key=["entity", "record_key", "reason", "payload"],
        write_disposition="merge",
    )


def _resource(
    entity: Entity,
    reader: Reader,
    window: Window,
    run_id: str,
    stats: EntityStats,
    threshold: float,
    settings: Settings,
):
    import dlt

    loaded_at = datetime.now(UTC)
    to_quarantine = quarantine_hints()

    @dlt.resource(**resource_hints(entity))
    def rows() -> Iterator[pa.Table]:
        state = dlt.current.resource_state()
        state_before = raw_archive.state_snapshot(state)
        # staged now, published only once this load has committed (load_source)
        archive = raw_archive.EntityStage(
            settings,
            entity,
            dlt.current.load_package_state()["load_id"],
            QUARANTINE_TABLE,
            _primary_key(entity),
        )
        reasons: dict[str, list] = {}  # rule → [rows, first full reason]
        pending: list[pa.Table] = []
        pending_rows = 0
        try:
            for batch in reader(entity, state, window):
                stats.rows_read += batch.rows_read
                stats.rows_loaded += batch.table.num_rows
                stats.rows_quarantined += batch.quarantined.num_rows
                if DELETED_COLUMN in batch.table.column_names:
                    stats.rows_removing += pc.sum(batch.table[DELETED_COLUMN]).as_py() or 0
                if batch.table.num_rows:
                    pending.append(batch.table)
                    pending_rows += batch.table.num_rows
                    if pending_rows >= LOAD_BATCH_ROWS:
                        table = _with_metadata(_concat(pending), loaded_at, run_id)
                        archive.add(raw_archive.ROWS, table)
                        yield table
                        pending, pending_rows = [], 0
                if batch.quarantined.num_rows:
                    for reason in batch.quarantined["reason"].to_pylist():
                        reasons.setdefault(rule_of(reason), [0, reason])[0] += 1
                    table = _with_metadata(batch.quarantined, loaded_at, run_id, quarantine=True)
                    archive.add(raw_archive.QUARANTINE, table)
                    yield dlt.mark.with_hints(table, to_quarantine, create_table_variant=True)
            if pending:
                table = _with_metadata(_concat(pending), loaded_at, run_id)
                archive.add(raw_archive.ROWS, table)
                yield table
            if stats.rows_read and stats.rows_quarantined / stats.rows_read > threshold:
                top = " | ".join(
                    f"{n}× {rule}, first: {first}"
                    for rule, (n, first) in sorted(reasons.items(), key=lambda x: -x[1][0])[:3]
                )
                raise QuarantineThresholdExceeded(
                    f"{entity.source}.{entity.name}: {stats.rows_quarantined} of "
                    f"{stats.rows_read} rows broke row-level rules "
                    f"({stats.rows_quarantined / stats.rows_read:.1%}, threshold "
                    f"{threshold:.1%}, setting OPS_QUARANTINE_THRESHOLD); the load is "
                    f"blocked and nothing of it was written. Most frequent: {top}"
                )
            archive.finish(state, state_before, run_id, window)
        except BaseException:
            archive.discard()
            raise

    return rows()


def rule_of(reason: str) -> str:
    """The rule a quarantine reason names, without its value and place (to count by)."""
    return reason.split("; ", 1)[0].split(" (", 1)[0]


def _concat(tables: list[pa.Table]) -> pa.Table:
    """One table of several pages; a field only some pages carry (schema drift) is null in
    the others, as dlt would have made it row by row."""
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def _with_metadata(
    table: pa.Table, loaded_at: datetime, run_id: str, quarantine: bool = False
) -> pa.Table:
    # pa.repeat, not a Python list of n values: 40× less CPU (2.8 s per million rows)
    n = table.num_rows
    stamp = pa.repeat(pa.scalar(loaded_at, pa.timestamp("us", tz="UTC")), n)
    run = pa.repeat(pa.scalar(run_id, pa.string()), n)
    if quarantine:
        return table.append_column("run_id", run).append_column("quarantined_at", stamp)
    return table.append_column("_loaded_at", stamp).append_column("_load_id", run)


def _pipeline(source: str, settings: Settings):
    import dlt

    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    # Our configuration comes from Settings, never from dlt secrets kept in an Airflow
    # Variable. Left on, dlt imports Airflow's ORM models and looks that Variable up every
    # time a pipeline is created: ~5 s of CPU per load (bench/bench.py, BENCHMARKS.md).
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    # dlt's anonymous usage telemetry is on unless turned off: every pipeline run would send
    # an event to dlthub's endpoint from a thread of its own. Nothing about a deployment
    # leaves it by default (docs/security.md), as dbt's and Great Expectations' usage
    # statistics are off too.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # A replaced table (a landing sheet's) is loaded into dlt's staging schema and swapped in
    # inside one transaction: readers never see it empty or half-written.
    os.environ.setdefault("DESTINATION__REPLACE_STRATEGY", "insert-from-staging")
    # Decimal/timestamp hints from Arrow are kept; dlt's notice about it is noise here.
    logging.getLogger("dlt").setLevel(logging.ERROR)
    destination = engine(settings).dlt_destination()
    # Pending load packages hold the rows, e-mails and names included: only the owner may
    # read the folder (docs/security.md).
    settings.dlt_dir.mkdir(parents=True, exist_ok=True)
    settings.dlt_dir.chmod(0o700)
    return dlt.pipeline(
        pipeline_name=f"ops_{source}_{settings.warehouse}",
        destination=destination,
        dataset_name=raw_schema(source),
        pipelines_dir=str(settings.dlt_dir),
        progress="log" if os.environ.get("OPS_DLT_PROGRESS") else None,
    )


def warehouse_state_hash(settings: Settings, source: str, pipeline_name: str) -> str | None:
    """The version hash of the load state the warehouse holds for one pipeline: the state
    dlt stored with the last load that completed there. None when the warehouse has none
    (a new, empty or lost warehouse)."""
    from ops_warehouse.warehouse.queries import query

    if not engine(settings).working_exists():
        return None
    schema = raw_schema(source)
    tables = {
        r[0]
        for r in query(
            settings,
            "select table_name from information_schema.tables where table_schema = ?",
            [schema],
        )
    }
    if not {"_dlt_pipeline_state", "_dlt_loads"} <= tables:
        return None
    rows = query(
        settings,
        f"select s.version_hash from {schema}._dlt_pipeline_state s"
        f" join {schema}._dlt_loads l on l.load_id = s._dlt_load_id"
        " where s.pipeline_name = ? and l.status = 0"
        " order by l.load_id desc limit 1",
        [pipeline_name],
    )
    return rows[0][0] if rows else None


def _align_with_warehouse(pipeline, settings: Settings, source: str):
    """Make the warehouse the only source of truth for load state.

    dlt keeps the cursors in a local folder and in the destination, and trusts the local
    folder whenever it exists. A lost or replaced warehouse (or a worker whose folder is
    days old) would then load only what came after the local cursors and leave history
    out, silently. So the local folder is a cache: when its state is not the one the
    warehouse holds, it is dropped (pending packages with it: they were extracted against a
    state the warehouse does not have; merge by key makes re-reading them harmless) and the
    warehouse's state is restored; a warehouse without state means a full initial load."""
    remote = warehouse_state_hash(settings, source, pipeline.pipeline_name)
    local = pipeline.state.get("_version_hash") if pipeline.has_data else None
    if remote is not None and local == remote:
        return pipeline
    if pipeline.has_data or pipeline.has_pending_data:
        log.warning(
            "%s: the local load state (%s) is not the warehouse's (%s); local copy dropped, %s",
            source,
            local or "none",
            remote or "none",
            "state restored from the warehouse" if remote else "full initial load",
        )
        pipeline = pipeline.drop()
    if remote is not None:
        pipeline.sync_destination()
        restored = pipeline.state.get("_version_hash")
        if restored != remote:
            raise LoadStateError(
                f"{source}: the load state restored from the warehouse ({restored}) is not the "
                f"one it holds ({remote}); nothing was loaded. Check that {settings.dlt_dir} "
                "(OPS_DLT_DIR) is not shared by two writers at once."
            )
    return pipeline


def load_source(
    source: str,
    window: Window,
    *,
    run_id: str = "manual",
    settings: Settings | None = None,
    entities: list[str] | None = None,
) -> LoadSummary:
    """Load every entity of one source for the given data interval. Raises on any failure
    before anything of this run is committed."""
    settings = settings or get_settings()
    summary = LoadSummary(source=source, window=window, run_id=run_id)
    started = time.monotonic()
    pipeline = _align_with_warehouse(_pipeline(source, settings), settings, source)
    # A previous run killed after extraction left a package that the warehouse's state
    # accounts for: finish it before reading more.
    if pipeline.has_pending_data:
        log.warning("%s: finishing a load package left by an interrupted run", source)
        # its rows may remove keys from raw, of the entities that take deletions
        deleting = [e.name for e in entities_of(source) if takes_deletions(e)]
        _record_removals(settings, source, deleting, None, "an interrupted load")
        pipeline.normalize()
        pipeline.load()
        delete_loaded_packages(pipeline)
    widen_to_contract(pipeline, settings, source)
    threshold = getattr(settings, "quarantine_threshold", 0.01)
    with ExitStack() as stack:
        readers = _readers(source, settings, stack)
        chosen = [e for e in entities_of(source) if entities is None or e.name in entities]
        resources = []
        for entity in chosen:
            stats = summary.entities.setdefault(entity.name, EntityStats())
            resources.append(
                _resource(entity, readers[entity.name], window, run_id, stats, threshold, settings)
            )
        _unwrapped(pipeline.extract, resources)
    removing = {n: s.rows_removing for n, s in summary.entities.items() if s.rows_removing}
    for name, rows in removing.items():
        _record_removals(settings, source, [name], rows, "deleted at the source")
    _unwrapped(pipeline.normalize)
    _unwrapped(pipeline.load, raise_on_failed_jobs=True)
    delete_loaded_packages(pipeline)
    raw_archive.publish(settings, source)
    counts = raw_counts(settings, source)
    engine(settings).index_load_marks(raw_schema(source), counts)
    for name, count in counts.items():
        if name in summary.entities:
            summary.entities[name].raw_rows = count
    summary.seconds = time.monotonic() - started
    return summary


def _record_removals(
    settings: Settings, source: str, names: list[str], rows: int | None, reason: str
) -> None:
    """Record, before the load that removes them commits, that rows of these raw tables go
    (audit.raw_removals: the next staging build drops their keys)."""
    from ops_warehouse.pipeline.audit import record_raw_removal

    with engine(settings).transaction() as db:
        for name in names:
            record_raw_removal(db, raw_table(source, name), rows, reason)


# A contract field whose type was widened: dlt keeps the type a column was first loaded with
# and would round new values into it (platform_conversions was a whole number).
WIDENED = {"decimal": ("bigint",)}


def widen_to_contract(pipeline, settings: Settings, source: str) -> list[str]:
    """Widen raw columns (and dlt's staging copy and stored schema) whose type the contract
    has since widened, so that a warehouse loaded before the change keeps every digit from
    now on. Returns the columns widened, as ``table.column``."""
    if not pipeline.default_schema_name:
        return []  # nothing loaded yet: the first load creates the contract's types
    schema = pipeline.default_schema  # one instance: each access may reload it from disk
    tables = schema.tables
    stale = [
        (entity, field)
        for entity in entities_of(source)
        for field in entity.fields
        if tables.get(entity.name, {}).get("columns", {}).get(field.name, {}).get("data_type")
        in WIDENED.get(field.type, ())
    ]
    if not stale:
        return []
    with engine(settings).transaction() as db:
        for entity, field in stale:
            for dataset in (raw_schema(source), raw_staging_schema(source)):
                if db.has_table(dataset, entity.name):
                    db.execute(
                        f'alter table "{dataset}"."{entity.name}" '
                        f'alter column "{field.name}" type decimal(18, 2)'
                    )
    for entity, field in stale:
        tables[entity.name]["columns"][field.name].update(
            data_type="decimal", precision=18, scale=2
        )
    schema._bump_version()  # dlt's schemas change only through updates that bump it
    pipeline.schemas.save_schema(schema)
    widened = [f"{entity.name}.{field.name}" for entity, field in stale]
    log.warning("%s: widened %s to the contract's decimal type", source, ", ".join(widened))
    return widened


def delete_loaded_packages(pipeline) -> list[str]:
    """Delete the load packages the warehouse has committed (dlt would keep their files, the
    rows with their e-mails and names, for ever). Packages not loaded yet stay: the next run
    finishes them. Returns the load ids deleted."""
    storage = pipeline._get_load_storage()  # dlt's own package store of this pipeline
    loaded = list(pipeline.list_completed_load_packages())
    for load_id in loaded:
        storage.delete_loaded_package(load_id)
    return loaded


def _unwrapped(step, *args, **kwargs):
    """Run a dlt step; surface our own error (source, entity, field) instead of dlt's wrapper."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    try:
        return step(*args, **kwargs)
    except PipelineStepFailed as exc:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, OpsWarehouseError):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise


def raw_counts(settings: Settings, source: str) -> dict[str, int]:
    """Rows per raw table of one source, in whichever warehouse the settings name."""
    from ops_warehouse.warehouse.queries import query

    tables = {
        r[0]
        for r in query(
            settings,
            "select table_name from information_schema.tables where table_schema = ?",
            [raw_schema(source)],
        )
    }
    return {
        e.name: query(settings, f'select count(*) from raw_{source}."{e.name}"')[0][0]
        for e in entities_of(source)
        if e.name in tables
    }
