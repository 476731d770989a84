"""Per-load reconciliation with the source: does raw hold every row the source says it has?

After each load (and the quarantine sweep), every entity whose source can tell how many rows
it holds is counted on both sides:

- the shop database (sales, SQL dialect): rows whose cursor is before the window's end,
  counted by SQL in the tables the mapping file's ``shop_sql`` names; every one of them is in
  raw (in this or an earlier version) once the loads up to that end have run, unless it is in
  quarantine; a shop read through its API (the Shopify dialect) gives no count;
- full reads (campaigns, agents) and landing sheets: the rows read this run are the source's
  whole content, so raw must hold at least as many;
- incremental API entities: the generic API gives no count, so ``source_rows`` stays empty.

``gap = source_rows − raw_rows − quarantined``: a positive gap is a load that lost rows
(a stale cursor, a partial load) and blocks. Both counts go to
``audit.pipeline_run_entities`` with the rows read, loaded and quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline.contracts import Entity, entities_of, raw_schema
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import Settings

if TYPE_CHECKING:
    from ops_warehouse.pipeline.loading import LoadSummary
    from ops_warehouse.warehouse.engines import Connection


class SourceGapError(OpsWarehouseError):
    """Raw holds fewer rows than the source says it has: the load cannot be trusted."""

    permanent = True


@dataclass(frozen=True)
class EntityReconciliation:
    source: str
    entity: str
    source_rows: int | None  # None: the source cannot tell
    raw_rows: int
    quarantined: int

    @property
    def gap(self) -> int:
        if self.source_rows is None:
            return 0
        return max(self.source_rows - self.raw_rows - self.quarantined, 0)

    def describe(self) -> str:
        return (
            f"{self.source}.{self.entity}: the source holds {self.source_rows} rows, raw "
            f"{self.raw_rows} and quarantine {self.quarantined}: {self.gap} missing"
        )


def _source_counts(
    settings: Settings, source: str, window: Window, summary: LoadSummary
) -> dict[str, int | None]:
    counts: dict[str, int | None] = {}
    if source == "sales":
        if settings.sales_dialect != "sql":
            return counts  # a shop's API (Shopify) cannot tell how many rows it holds
        from ops_warehouse.pipeline.sources import sales

        tables = sales.source_tables(settings)
        with sales.engine(settings).connect() as conn:
            for entity in entities_of(source):
                if entity.name in summary.entities:
                    counts[entity.name] = sales.count_rows(
                        conn, entity, window, tables[entity.name]
                    )
        return counts
    for entity in entities_of(source):
        stats = summary.entities.get(entity.name)
        if stats is not None and entity.mode in ("full", "files"):
            counts[entity.name] = stats.rows_read
    return counts


def _raw_rows(reader: Connection, entity: Entity, window: Window) -> int:
    table = f'{entity.raw_schema}."{entity.name}"'
    if not reader.has_table(entity.raw_schema, entity.name):
        return 0  # nothing served yet: dlt creates the table with its first row
    if entity.source == "sales":
        upper = window.end.date() if entity.cursor == "rate_date" else window.end
        counted = reader.fetch(f'select count(*) from {table} where "{entity.cursor}" < ?', [upper])
        return counted[0][0]
    return reader.fetch(f"select count(*) from {table}")[0][0]


def _quarantined(reader: Connection, source: str) -> dict[str, int]:
    """Distinct quarantined keys per entity of one source (rows kept out of raw)."""
    from ops_warehouse.pipeline.loading import QUARANTINE_TABLE

    schema = raw_schema(source)
    if not reader.has_table(schema, QUARANTINE_TABLE):
        return {}
    return dict(
        reader.fetch(
            f'select entity, count(distinct record_key) from {schema}."{QUARANTINE_TABLE}"'
            " group by entity"
        )
    )


def reconcile(
    settings: Settings, source: str, window: Window, summary: LoadSummary
) -> list[EntityReconciliation]:
    """Every loaded entity of one source, counted in the source (where it can tell) and raw."""
    from ops_warehouse.warehouse.engines import engine

    counts = _source_counts(settings, source, window, summary)
    # one connection for every count: opening DuckDB's file costs more than most counts here
    with engine(settings).read_only() as reader:
        quarantined = _quarantined(reader, source)
        return [
            EntityReconciliation(
                source=source,
                entity=entity.name,
                source_rows=counts.get(entity.name),
                raw_rows=_raw_rows(reader, entity, window),
                quarantined=int(quarantined.get(entity.name, 0)),
            )
            for entity in entities_of(source)
            if entity.name in summary.entities
        ]


def check(reconciliations: list[EntityReconciliation]) -> None:
    """Raise ``SourceGapError`` naming every entity whose raw rows fall short of the source."""
    gaps = [r for r in reconciliations if r.gap]
    if gaps:
        raise SourceGapError(
            "raw holds fewer rows than the source: "
            + "; ".join(r.describe() for r in gaps)
            + ". Nothing downstream runs; reload the source (the warehouse's load state is"
            " restored at the start of each load) or rebuild raw from the archive (ops rebuild)."
        )
