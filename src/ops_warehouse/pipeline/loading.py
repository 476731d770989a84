"""Load one source into the working warehouse's raw schema with dlt.

Readers yield Arrow tables typed by the contract; dlt merges them into
``raw_<source>.<entity>`` by primary key (latest version wins) and stores each entity's
cursor in its resource state, which dlt commits together with the data. A run killed
half-way leaves a pending load package that the next run finishes first, so a crashed
load resumes exactly where the last committed one ended.
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

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline import raw_archive
from ops_warehouse.pipeline.contracts import QUARANTINE_TABLE, Entity, entities_of
from ops_warehouse.pipeline.sources import marketing, sales, support
from ops_warehouse.pipeline.sources.arrow_rows import Batch
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import Settings, get_settings

log = logging.getLogger(__name__)

Reader = Callable[[Entity, dict, Window], Iterator[Batch]]

# Source pages are handed to dlt in tables of at least this many rows: dlt's cost per item
# (schema and table bookkeeping, ~5 ms) would otherwise be paid per API page of 1000 rows.
LOAD_BATCH_ROWS = 50_000


class QuarantineThresholdExceeded(OpsWarehouseError):
    """Too large a share of one entity's rows broke row-level rules: the load blocks."""


class LoadStateError(OpsWarehouseError):
    """The load state in the warehouse could not be taken over by this worker."""


@dataclass
class EntityStats:
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    raw_rows: int = 0


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
    if source == "marketing":
        api = marketing.client(settings)
        return {
            "ad_performance": lambda e, s, w: marketing.read_ad_performance(api, e, s, w, settings),
            "campaigns": lambda e, s, w: marketing.read_campaigns(api, e, s, w, settings),
            "signups": lambda e, s, w: marketing.read_signups(api, e, s, w, settings),
            "budget": lambda e, s, w: marketing.read_sheets(settings.landing_dir, e, w),
            "kpi_targets": lambda e, s, w: marketing.read_sheets(settings.landing_dir, e, w),
        }
    if source == "sales":
        conn = stack.enter_context(sales.engine(settings).connect())
        return {
            e.name: (lambda e, s, w: sales.read_table(conn, e, s, w)) for e in entities_of("sales")
        }
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
    # Sheets keep every file's rows; staging picks the newest file per month.
    return (
        ["_file_name", *entity.primary_key] if entity.mode == "files" else list(entity.primary_key)
    )


def resource_hints(entity: Entity) -> dict:
    """How dlt writes an entity's raw table: merged by key, the newest cursor value winning
    among a load's duplicates. Loads and the rebuild from the raw archive share them."""
    columns = {entity.cursor: {"dedup_sort": "desc"}} if entity.mode == "cursor" else None
    return dict(
        name=entity.name,
        primary_key=_primary_key(entity),
        write_disposition="merge",
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
        reasons: dict[str, int] = {}
        pending: list[pa.Table] = []
        pending_rows = 0
        try:
            for batch in reader(entity, state, window):
                stats.rows_read += batch.rows_read
                stats.rows_loaded += batch.table.num_rows
                stats.rows_quarantined += batch.quarantined.num_rows
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
                        reasons[reason] = reasons.get(reason, 0) + 1
                    table = _with_metadata(batch.quarantined, loaded_at, run_id, quarantine=True)
                    archive.add(raw_archive.QUARANTINE, table)
                    yield dlt.mark.with_hints(table, to_quarantine, create_table_variant=True)
            if pending:
                table = _with_metadata(_concat(pending), loaded_at, run_id)
                archive.add(raw_archive.ROWS, table)
                yield table
            if stats.rows_read and stats.rows_quarantined / stats.rows_read > threshold:
                top = ", ".join(
                    f"{n}× {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])[:3]
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
    # Decimal/timestamp hints from Arrow are kept; dlt's notice about it is noise here.
    logging.getLogger("dlt").setLevel(logging.ERROR)
    if settings.warehouse == "postgres":
        from sqlalchemy.engine import make_url

        url = make_url(settings.postgres_url).set(drivername="postgresql")
        if not url.password:
            # dlt insists on a password; with trust/peer auth the server ignores it
            url = url.set(password="unused")
        destination = dlt.destinations.postgres(url.render_as_string(hide_password=False))
    else:
        destination = dlt.destinations.duckdb(str(settings.warehouse_path))
    return dlt.pipeline(
        pipeline_name=f"ops_{source}_{settings.warehouse}",
        destination=destination,
        dataset_name=f"raw_{source}",
        pipelines_dir=str(settings.dlt_dir),
        progress="log" if os.environ.get("OPS_DLT_PROGRESS") else None,
    )


def warehouse_state_hash(settings: Settings, source: str, pipeline_name: str) -> str | None:
    """The version hash of the load state the warehouse holds for one pipeline: the state
    dlt stored with the last load that completed there. None when the warehouse has none
    (a new, empty or lost warehouse)."""
    from ops_warehouse.warehouse.queries import query

    if settings.warehouse == "duckdb" and not settings.warehouse_path.exists():
        return None
    schema = f"raw_{source}"
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
        pipeline.normalize()
        pipeline.load()
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
    _unwrapped(pipeline.normalize)
    _unwrapped(pipeline.load, raise_on_failed_jobs=True)
    raw_archive.publish(settings, source)
    for name, count in raw_counts(settings, source).items():
        if name in summary.entities:
            summary.entities[name].raw_rows = count
    summary.seconds = time.monotonic() - started
    return summary


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
            [f"raw_{source}"],
        )
    }
    return {
        e.name: query(settings, f'select count(*) from raw_{source}."{e.name}"')[0][0]
        for e in entities_of(source)
        if e.name in tables
    }
