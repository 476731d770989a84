"""Whether a transform run is a full build or an incremental day.

An incremental day (the default) builds and checks in proportion to what the day's loads
brought: dbt's incremental models take only the keys those loads changed, the raw checks read
only the rows of those loads (plus whole-table counts), and dbt runs the daily selection of its
data tests. A full build (``dbt build --full-refresh``, every data test, every check on whole
tables) runs on the weekdays of ``OPS_FULL_REBUILD_DAYS`` (default Sunday, by the run's as-of
date) and when a run is triggered with ``{"full_rebuild": true}`` in its conf;
``{"full_rebuild": false}`` makes any day an incremental one. Its result equals the chain of incremental days before it
(tests/dbt/test_incremental_equivalence.py): the weekly full build is the proof, not a repair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ops_warehouse.settings import WEEKDAYS, Settings

# The DAG run conf key that asks for a full build.
FULL_REBUILD_CONF = "full_rebuild"
# The incremental models that keep their watermark in a column of their own: a table built by
# an earlier version, without it, needs one full build before its first incremental day.
WATERMARK_COLUMNS = {
    ("intermediate", "int_orders_converted"): "_inputs_loaded_at",
    ("intermediate", "int_ticket_events_summarised"): "_inputs_loaded_at",
    ("intermediate", "int_tickets_status_periods"): "_inputs_loaded_at",
}


@dataclass(frozen=True)
class RunMode:
    full: bool
    reason: str

    def describe(self) -> str:
        return f"{'full build' if self.full else 'incremental day'} ({self.reason})"


def run_mode(settings: Settings, as_of: date, *, requested: bool | None = None) -> RunMode:
    """The mode of a run as of ``as_of``; ``requested`` (the run's conf) overrides the days,
    and a warehouse whose tables an earlier version built gets a full build
    (``outdated_tables``). On
    Spark the models are written whole either way (Parquet tables, docs/decisions.md "Spark"):
    there the mode decides which dbt tests run and what the checks read."""
    if requested is not None:
        return RunMode(requested, f"the run's conf: {FULL_REBUILD_CONF}={str(requested).lower()}")
    outdated = outdated_tables(settings)
    if outdated:
        return RunMode(True, "; ".join(outdated))
    if as_of.weekday() in settings.full_rebuild_weekdays:
        return RunMode(True, f"OPS_FULL_REBUILD_DAYS includes {WEEKDAYS[as_of.weekday()]}")
    return RunMode(False, "OPS_FULL_REBUILD_DAYS")


def requested_in(conf: Mapping[str, Any] | None) -> bool | None:
    """What a DAG run's conf asks for: ``{"full_rebuild": true}`` a full build, ``false`` an
    incremental day, absent: the days decide (None)."""
    value = (conf or {}).get(FULL_REBUILD_CONF)
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{FULL_REBUILD_CONF} in the run's conf must be true or false, not {value!r}")


def outdated_tables(settings: Settings) -> list[str]:
    """Why the tables an earlier version built need one full build before an incremental day,
    if they do (one reason per kind; none on a warehouse with nothing built yet, whose first
    build is a full one anyway, nor where models are written whole):

    - incremental models whose table has no watermark column (WATERMARK_COLUMNS);
    - marts whose table has no NOT NULL column, built before the contracts declared their
      not-null columns as constraints: an incremental day leaves the marts' not_null tests to
      those constraints (dbt_project/selectors.yml), and an incremental model keeps its table.
    """
    from ops_warehouse.warehouse.engines import engine
    from ops_warehouse.warehouse.queries import query

    warehouse = engine(settings)
    if not warehouse.builds_incrementally or not warehouse.working_exists():
        return []
    columns = query(  # (schema, table, column, nullable) of the built tables, read once
        settings,
        "select c.table_schema, c.table_name, lower(c.column_name), c.is_nullable "
        "from information_schema.columns as c join information_schema.tables as t "
        "on c.table_schema = t.table_schema and c.table_name = t.table_name "
        "where c.table_schema in ('intermediate', 'marts') and t.table_type = 'BASE TABLE'",
    )
    tables = {(schema, table) for schema, table, _, _ in columns}
    named = {(schema, table, column) for schema, table, column, _ in columns}
    no_watermark = [
        f"{schema}.{table}"
        for (schema, table), column in WATERMARK_COLUMNS.items()
        if (schema, table) in tables and (schema, table, column) not in named
    ]
    constrained = {(schema, table) for schema, table, _, nullable in columns if nullable == "NO"}
    unconstrained = sorted(
        f"{schema}.{table}" for schema, table in tables - constrained if schema == "marts"
    )
    reasons = []
    if no_watermark:
        reasons.append(f"{', '.join(no_watermark)} predate(s) incremental days")
    if unconstrained:
        reasons.append(f"{', '.join(unconstrained)} predate(s) the NOT NULL constraints")
    return reasons
