"""Run the Great Expectations suites of ``expectations/gx`` and report ``CheckResult``s.

Suites are data: ``expectations/gx/expectations/<entity>/<layer>.json`` is the suite
``<entity>.<layer>`` (GX's own file layout). Its ``meta.batch`` names what it validates, a
table (``{"table": "raw_sales.orders"}``) or a query file (``{"query": "x.sql"}`` in
``expectations/gx/queries/``); ``meta.contract`` names the contracts.py entity whose fields
the table must not outgrow unnoticed; every expectation carries ``meta.severity`` (``block`` or
``warn``, docs/quality.md) and may carry ``meta.check``, a readable name for reports.

How the checks run: a table suite through GX's SQL datasource on both engines
(``duckdb_engine`` for DuckDB, psycopg2 for PostgreSQL), so every metric is computed in the
database as a query and no table is read into Python. GX reads a query's rows after it has
handed the connection back (``SqlAlchemyExecutionEngine.execute_query``); psycopg2 has
buffered them by then, DuckDB has not, and on DuckDB every expectation would fail with
``IndexError`` on an empty result: ``_buffer_query_results`` makes GX fetch the rows while the
connection is still its own. A query suite (a reconciliation, a few rows computed from whole
tables) is run once and its result handed to GX as a DataFrame: GX would run the query again
for every metric (31 s instead of 1 s for the revenue reconciliation at scale 10 on DuckDB).

What the checks read (docs/quality.md "Checks in proportion to the day"): on a full build every
check reads its whole table. On an incremental day (``full=False``) a table suite whose rows
carry ``_loaded_at`` (the newest load behind the row: raw, where the loaders stamp every row of a
load with one value; staging; fct_tickets) reads, for its row checks (``ROW_CHECKS``), only the
rows newer than that table's newest ``_loaded_at`` when its layer's gate last passed
(``audit.validated_loads``): the rows the loads, and the builds, brought since. That is a GX
``row_condition``, which becomes the ``where`` of each metric query. Its key checks
(``KEY_CHECKS``) read the rows sharing a key with those rows, old ones included (a new row can
repeat an old key): a query batch of their own, validated as ``<suite>.new_keys.<key>``. Each
such result says which rows it read. The table-level checks (columns, row count, freshness) read
the whole table; so does every check of a table without ``_loaded_at`` or without a mark yet.

Run output (validation results, Data Docs) goes under ``settings.home``; nothing is written
into the repository.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline import audit
from ops_warehouse.pipeline.contracts import entity
from ops_warehouse.pipeline.quality.results import CheckResult
from ops_warehouse.settings import PROJECT_ROOT, Settings
from ops_warehouse.warehouse.engines import Connection, engine

log = logging.getLogger(__name__)

GX_DIR = PROJECT_ROOT / "expectations" / "gx"
SUITES_DIR = GX_DIR / "expectations"
QUERIES_DIR = GX_DIR / "queries"
LAYERS = ("raw", "staging", "marts")
SEVERITIES = ("block", "warn")
GX_SEVERITY = {"block": "critical", "warn": "warning"}
ROW_COUNT_CHECK = "expect_table_row_count_to_be_between"
VOLUME_HISTORY_RUNS = 7
# The loaders' stamp on every row, one value per load (pipeline/loading.py), carried by staging
# and fct_tickets as the newest load behind a row: what marks the rows written since a mark.
LOAD_MARK = "_loaded_at"
# Key uniqueness: on an incremental day, the rows sharing a key with a new row (old ones too).
KEY_CHECKS = frozenset(
    {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
)
# Checks a row passes or fails on its own: on an incremental day, the new rows' only.
ROW_CHECKS = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_pair_values_a_to_be_greater_than_b",
    }
)
_SHOWN_VALUES = 5
# What GX computes beyond pass or fail: BASIC gives the counts, an aggregate check's observed
# value and a sample of the unexpected values (what a CheckResult keeps). SUMMARY adds, for every
# row check, value counts and row indexes that nothing here reads: 13-21 % of the checks'
# time on an incremental day (BENCHMARKS.md, the fourth round).
RESULT_FORMAT = "BASIC"


class SuiteError(OpsWarehouseError):
    """A suite file that cannot be run as it is written."""


@dataclass(frozen=True)
class Suite:
    name: str
    layer: str
    path: Path
    table: str | None
    query: str | None
    contract: str | None
    body: dict[str, Any]

    @property
    def asset_name(self) -> str:
        return self.table or f"query:{self.query}"


@dataclass(frozen=True)
class Scope:
    """The rows an incremental day's checks read: those loaded after ``since`` (row checks),
    and every row sharing a key with one of them (key checks)."""

    since: datetime

    @property
    def rows(self) -> str:
        return f"rows loaded after {self.since.isoformat()}"

    @property
    def keys(self) -> str:
        return f"keys of {self.rows}"

    def rows_sharing_keys(self, table: str, columns: tuple[str, ...], instant_type: str) -> str:
        """The rows of ``table`` whose key a row loaded after ``since`` also has. A key with a
        null part matches nothing here: the key columns' not-null checks report it.
        ``instant_type``: the engine's spelling of a timestamp with a time zone."""
        key = ", ".join(f'"{c}"' for c in columns)
        key = f"({key})" if len(columns) > 1 else key
        since = f"cast('{self.since.isoformat()}' as {instant_type})"
        return (
            f"select * from {table} where {key} in "
            f"(select {key} from {table} where {LOAD_MARK} > {since})"
        )


def data_docs_dir(settings: Settings) -> Path:
    return settings.home / "data_docs"


def results_dir(settings: Settings) -> Path:
    return settings.home / "gx" / "validations"


# --- suites ---------------------------------------------------------------------------------


def load_suites(layer: str | None = None) -> list[Suite]:
    """Every suite file (of one layer), checked for what the runner relies on."""
    if layer is not None and layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(LAYERS)}, not {layer!r}")
    suites = []
    for path in sorted(SUITES_DIR.glob("*/*.json")):
        suite = _read_suite(path)
        if layer is None or suite.layer == layer:
            suites.append(suite)
    return suites


def _read_suite(path: Path) -> Suite:
    where = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
    try:
        body = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{where}: not valid JSON ({exc})") from None
    expected = f"{path.parent.name}.{path.stem}"
    if body.get("name") != expected:
        raise SuiteError(
            f"{where}: the suite's name must be {expected!r} (entity folder, layer file)"
        )
    if path.stem not in LAYERS:
        raise SuiteError(f"{where}: the file name must be a layer: {', '.join(LAYERS)}")
    meta = body.get("meta") or {}
    batch = meta.get("batch") or {}
    table, query = batch.get("table"), batch.get("query")
    if bool(table) == bool(query):
        raise SuiteError(f"{where}: meta.batch needs exactly one of 'table' or 'query'")
    if query and not (QUERIES_DIR / query).is_file():
        raise SuiteError(f"{where}: query file {query!r} not found in {QUERIES_DIR}")
    for i, exp in enumerate(body.get("expectations") or []):
        severity = (exp.get("meta") or {}).get("severity")
        if severity not in SEVERITIES:
            raise SuiteError(
                f"{where}: expectation {i} ({exp.get('type')}) needs meta.severity "
                f"'block' or 'warn', not {severity!r}"
            )
    contract = meta.get("contract")
    if contract:
        entity(contract)  # raises naming the known entities
    return Suite(expected, path.stem, path, table, query, contract, body)


def _gx_suite(suite: Suite, expectations: list[dict] | None = None, name: str | None = None):
    """The suite for GX: its own expectations, or those given, under its name or the one given
    (an incremental day validates a suite's key checks apart, on another batch)."""
    from great_expectations.core.expectation_suite import ExpectationSuite

    body = {k: v for k, v in suite.body.items() if k in ("name", "meta", "notes")}
    body["name"] = name or suite.name
    # GX's own severity field follows meta.severity, the one the gate reads
    body["expectations"] = [
        {**e, "severity": GX_SEVERITY[e["meta"]["severity"]]}
        for e in (suite.body["expectations"] if expectations is None else expectations)
    ]
    return ExpectationSuite(**body)


def _scoped(suite: Suite, scope: Scope) -> tuple[list[dict], dict[tuple[str, ...], list[dict]]]:
    """A table suite's expectations for an incremental day: on the table, the row checks
    restricted to the new rows (a GX row_condition, pushed into each metric query's where) and
    the table-level checks whole; apart, the key checks by key, each run on the rows sharing a
    key with a new row (a batch of its own)."""
    from great_expectations.expectations.row_conditions import Column

    new_rows = Column(LOAD_MARK) > scope.since
    table: list[dict] = []
    keys: dict[tuple[str, ...], list[dict]] = {}
    for e in suite.body["expectations"]:
        if e["type"] in KEY_CHECKS:
            kwargs = e["kwargs"]
            key = (kwargs["column"],) if "column" in kwargs else tuple(kwargs["column_list"])
            keys.setdefault(key, []).append(e)
        elif e["type"] in ROW_CHECKS:
            table.append({**e, "kwargs": {**e["kwargs"], "row_condition": new_rows}})
        else:
            table.append(e)
    return table, keys


class _BusinessDates:
    """``{business_date[column]}`` in a query file: the column's date in the business time
    zone, as the connection's engine spells it."""

    def __init__(self, con: Connection, tz: str) -> None:
        self.con, self.tz = con, tz

    def __getitem__(self, column: str) -> str:
        return self.con.local_date(column, self.tz)


def _query_text(suite: Suite, settings: Settings, as_of: date, con: Connection) -> str:
    sql = (QUERIES_DIR / suite.query).read_text()
    return sql.format(
        as_of_date=as_of.isoformat(),
        reporting_currency=settings.reporting_currency,
        business_tz=settings.business_tz,
        business_date=_BusinessDates(con, settings.business_tz),
        double=con.double_type,
    )


# --- GX context -----------------------------------------------------------------------------


def _context(settings: Settings):
    """An in-memory GX context configured by great_expectations.yml, with run output (results,
    Data Docs) under settings.home and the suites loaded from the repository's files."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX narrates every asset and batch at INFO; our own log line per layer says what matters.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import yaml
    from great_expectations.data_context.types.base import DataContextConfig

    config = yaml.safe_load((GX_DIR / "great_expectations.yml").read_text())
    in_memory = {"class_name": "InMemoryStoreBackend"}
    stores = config["stores"]
    for name in ("expectations_store", "checkpoint_store", "validation_definition_store"):
        stores[name]["store_backend"] = in_memory
    stores["validation_results_store"]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": str(results_dir(settings)),
    }
    for site in config.get("data_docs_sites", {}).values():
        site["store_backend"]["base_directory"] = str(data_docs_dir(settings))
    for key in ("config_variables_file_path", "plugins_directory", "fluent_datasources"):
        config.pop(key, None)
    context = gx.get_context(project_config=DataContextConfig(**config), mode="ephemeral")
    # An ephemeral context holds its configuration in memory, yet GX serializes all of it to
    # YAML into an in-memory store after every datasource, asset and batch definition added
    # (twice a suite: 0.9 s of the 6 s the staging and marts checks took at scale 10). Nothing
    # reads that copy: the context works from the objects themselves.
    context._save_project_config = lambda *args, **kwargs: None
    return context


# --- parameters -----------------------------------------------------------------------------


def as_of_end(settings: Settings, as_of: date) -> datetime:
    """The end of the as-of day in the business time zone, as a UTC instant."""
    zone = ZoneInfo(settings.business_tz)
    return datetime.combine(as_of + timedelta(days=1), dtime(), zone).astimezone(UTC)


def run_parameters(settings: Settings, as_of: date) -> dict[str, Any]:
    """The $PARAMETERs every suite may use (ISO strings: GX compares them with the column's
    own type, a timestamp with a timestamp, a date with a date)."""
    since = as_of_end(settings, as_of) - timedelta(hours=settings.freshness_hours)
    since_day = since.astimezone(ZoneInfo(settings.business_tz)).date()
    return {
        "as_of_date": as_of.isoformat(),
        "fresh_since": since.isoformat(),
        "fresh_since_day": since_day.isoformat(),
    }


def volume_band(history: list[int], tolerance: float) -> tuple[int, int | None]:
    """Row-count band from the counts recorded by the trailing runs: at least one row when
    there is no history, else [min × (1 − tolerance), max × (1 + tolerance)]."""
    if not history:
        return 1, None
    return int(min(history) * (1 - tolerance)), int(max(history) * (1 + tolerance)) + 1


# --- reading the warehouse ------------------------------------------------------------------


class _Warehouse:
    """What the runner needs from the warehouse: one connection for the whole run."""

    def __init__(self, settings: Settings, con: Connection, audit_con: Connection) -> None:
        self.settings = settings
        self.con = con  # where the layer's tables are
        self.audit_con = audit_con  # where the audit trail is (the same but on Spark)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        return self.con.fetch(sql, params or [])

    def frame(self, sql: str):
        """A query's result as a pandas DataFrame, money (decimals) as doubles: Python Decimal
        objects are ~10x slower to convert and compare, and the exact sums are computed in
        the query, before anything becomes a float."""
        return self.con.frame(sql)

    def columns(self, table: str) -> list[str]:
        schema, name = table.split(".", 1)
        return self.con.columns(schema, name)

    def validated_loads(self) -> dict[str, datetime]:
        """Per table, the newest ``_loaded_at`` the last passing gate of its layer vouched for."""
        table = f"{audit.SCHEMA}.{audit.VALIDATED_LOADS}"
        try:
            rows = self.audit_con.fetch(
                f"select v.table_name, v.loaded_through from {table} v join ("
                f"select table_name, max(validated_at) as validated_at from {table} "
                "group by table_name) latest using (table_name, validated_at)"
            )
        except Exception:  # no audit table yet (first run): nothing vouched for
            return {}
        return dict(rows)

    def newest_load(self, table: str) -> datetime | None:
        """A table's newest ``_loaded_at``; None when it has no such column, or no row."""
        if LOAD_MARK not in self.columns(table):
            return None
        return self.query(f"select max({LOAD_MARK}) from {table}")[0][0]

    def row_count_history(self, suite: str, run_id: str) -> list[int]:
        """Row counts recorded for this suite by earlier runs (audit.dq_results), if any."""
        try:
            rows = self.audit_con.fetch(
                'select observed_value from audit.dq_results where suite = ? and "check" = ? '
                "and run_id <> ? and observed_value is not null order by checked_at desc limit ?",
                [suite, ROW_COUNT_CHECK, run_id, VOLUME_HISTORY_RUNS],
            )
        except Exception:  # no audit schema yet (first run) or another layout: no history
            return []
        out = []
        for (value,) in rows:
            try:
                out.append(int(float(value)))
            except (TypeError, ValueError):
                continue
        return out


@contextmanager
def _open_warehouse(settings: Settings, layer: str) -> Iterator[_Warehouse]:
    warehouse = engine(settings)
    with (
        warehouse.validation_reader() as working,
        warehouse.layer_reader(layer, working) as con,
    ):
        yield _Warehouse(settings, con, working)


# --- running --------------------------------------------------------------------------------


def newest_loads(settings: Settings, layers: Iterable[str]) -> dict[str, datetime]:
    """The newest ``_loaded_at`` of each table the layers' suites read (those that carry it):
    what a gate on those layers vouches for when it passes. Read it before the checks run (rows
    that arrive during them are then checked next time, never skipped) and record it with
    ``audit.record_validated_loads`` once the gate has passed; a blocked gate records nothing,
    so the next run checks the same rows again."""
    out = {}
    for layer in layers:
        with _open_warehouse(settings, layer) as warehouse:
            for suite in load_suites(layer):
                if suite.table and warehouse.columns(suite.table):
                    newest = warehouse.newest_load(suite.table)
                    if newest is not None:
                        out[suite.table] = newest
    return out


def run_suites(
    settings: Settings,
    layer: str,
    as_of: date,
    run_id: str,
    only: Iterable[str] | None = None,
    *,
    full: bool = True,
) -> list[CheckResult]:
    """Validate every suite of one layer ('raw', 'staging' or 'marts'), or just the suites named
    in ``only``, and return one result per check. Results also go to GX's validation store (for
    Data Docs); recording them in audit.dq_results is the caller's job.

    ``full``: every check reads its whole table (a full build). Else (an incremental day) the
    row checks of a table that carries ``_loaded_at`` read only its rows newer than the mark the
    layer's last passing gate recorded, and its key checks the rows sharing a key with those
    (see the module's docstring); with no mark, the whole table."""
    suites = load_suites(layer)
    if only is not None:
        wanted = set(only)
        unknown = wanted - {s.name for s in suites}
        if unknown:
            raise ValueError(f"no {layer} suite named {', '.join(sorted(unknown))}")
        suites = [s for s in suites if s.name in wanted]
    started = time.monotonic()
    context = _context(settings)
    params = run_parameters(settings, as_of)
    results: list[CheckResult] = []
    with _open_warehouse(settings, layer) as warehouse, warnings.catch_warnings():
        # GX 1.x warns of deprecations in its own internals: not our news
        warnings.simplefilter("ignore", DeprecationWarning)
        datasource = _datasource(context, settings, warehouse)
        marks = {} if full else warehouse.validated_loads()
        scoped = 0
        for suite in suites:
            mark = marks.get(suite.table) if suite.table else None
            scoped += mark is not None
            scope = Scope(mark) if mark is not None else None
            results += _run_suite(
                context, datasource, warehouse, suite, settings, as_of, run_id, params, scope
            )
    failed = [r for r in results if not r.success]
    log.info(
        "%s (%s): %d suites, %d checks, %d failed (%d blocking) in %.1f s",
        layer,
        "full build: whole tables"
        if full
        else f"incremental day: {scoped} tables' row checks on the rows since their mark",
        len(suites),
        len(results),
        len(failed),
        len(blocking_failures(results)),
        time.monotonic() - started,
    )
    for result in failed:
        log.warning("%s", result.describe())
    return results


# At most this many processes share a gate's suites (``run_layers``): past it, each one's own
# context and connections cost about what its share saves.
MAX_VALIDATION_PROCESSES = 4


def run_layers(
    settings: Settings,
    layers: Iterable[str],
    as_of: date,
    run_id: str,
    *,
    full: bool = True,
    processes: int | None = None,
) -> list[CheckResult]:
    """Every suite of these layers, the results in the order ``run_suites`` gives them one
    layer after the other, computed by up to ``processes`` processes at once (default: the
    cores this process may use, at most ``MAX_VALIDATION_PROCESSES``).

    Great Expectations resolves each check's metrics in Python, one check at a time (about
    30 ms apiece, more than the database's part on an incremental day), so one process keeps
    one core busy. The suites are dealt round-robin into shares; this process runs the first,
    forked children the others, each with its own connections and an in-memory GX context;
    the children's results come back through a pipe. Results are the same whatever the
    split: every check reads only the warehouse, its own table's marks and the run's
    parameters. A single process where forking is not safe (another thread running: a fork
    copies only the calling one) and on Spark, whose checks wait on the cluster's Thrift
    server rather than on GX. Call it with no warehouse connection open: a child would
    inherit an open DuckDB database without the threads that run its queries."""
    layers = list(layers)
    order = {
        (layer, suite.name): i
        for i, (layer, suite) in enumerate((lay, s) for lay in layers for s in load_suites(lay))
    }
    count = processes or min(_usable_cores(), MAX_VALIDATION_PROCESSES)
    count = min(count, len(order))
    if count <= 1 or not engine(settings).checks_in_processes or not _can_fork():
        log.info("%d suites in one process", len(order))
        return [
            r for layer in layers for r in run_suites(settings, layer, as_of, run_id, full=full)
        ]
    log.info("%d suites in %d processes", len(order), count)
    import great_expectations  # noqa: F401  (once, before the fork: the children inherit it)

    work = list(order)
    shares = [work[i::count] for i in range(count)]

    def run_share(share: list[tuple[str, str]]) -> list[tuple[int, CheckResult]]:
        out = []
        for layer in layers:
            names = [name for lay, name in share if lay == layer]
            if names:
                for result in run_suites(settings, layer, as_of, run_id, names, full=full):
                    out.append((order[(layer, result.suite)], result))
        return out

    children = [_fork_share(run_share, share) for share in shares[1:]]
    try:
        mine = run_share(shares[0])
    finally:  # every child is waited for, whatever happened here
        ended = [(_wait_for_share(pid, read), share) for pid, read, share in children]
    theirs = [pair for outcome, share in ended for pair in _share_results(outcome, share)]
    return [result for _, result in sorted(mine + theirs, key=lambda pair: pair[0])]


class ValidationProcessFailed(OpsWarehouseError):
    """A process that ran a share of a gate's suites ended without its results."""


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _can_fork() -> bool:
    import threading

    return hasattr(os, "fork") and threading.active_count() == 1


def _fork_share(run_share, share) -> tuple[int, int, list[tuple[str, str]]]:
    """Start a child that runs ``run_share(share)`` and writes what came of it (pickled) into
    a pipe: its results or its error, and its log records. Returns the child's pid, the
    pipe's read end and the share.

    The child logs nothing itself: its records go back with its results and are logged by
    this process (``_share_results``), so that two processes never write to the task's log
    handlers (Airflow's may be a socket to its supervisor) at the same time."""
    import gc
    import pickle
    import sys

    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # the child's collector leaves alone what it inherits (GX, pandas, …)
    pid = os.fork()
    if pid != 0:
        gc.unfreeze()
        os.close(write)
        return pid, read, share
    code = 1  # the child: never returns
    try:
        os.close(read)
        records = _keep_log_records()
        try:
            payload = ("results", run_share(share), records)
        except BaseException as exc:
            import traceback

            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            payload = ("error", error, records)
        with os.fdopen(write, "wb") as out:
            pickle.dump(payload, out)
        code = 0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _keep_log_records() -> list[tuple[int, str, str]]:
    """In a child: every log record from now on is kept in the returned list, as (level,
    logger, message), instead of going to the handlers it inherited."""
    records: list[tuple[int, str, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append((record.levelno, record.name, record.getMessage()))

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(Keep())
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    return records


def _wait_for_share(pid: int, read: int) -> tuple[bytes, int]:
    """What a child wrote into its pipe, read to the end, and its exit status once ended."""
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    return data, status


def _share_results(outcome: tuple[bytes, int], share: list[tuple[str, str]]):
    """A child's results, after its log records are logged here; ``ValidationProcessFailed``
    naming its suites when it sent an error, or nothing (killed: out of memory, say)."""
    import pickle

    data, status = outcome
    suites = ", ".join(name for _, name in share)
    if not data:
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        raise ValidationProcessFailed(f"the process checking {suites} {how} without results")
    kind, value, records = pickle.loads(data)
    for level, name, message in records:
        logging.getLogger(name).log(level, "%s", message)
    if kind != "results":
        raise ValidationProcessFailed(f"checking {suites} failed: {value}")
    return value


def blocking_failures(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.is_blocking_failure]


def _datasource(context, settings: Settings, warehouse: _Warehouse):
    """The SQL datasource table suites run against. Query suites' results go to one DataFrame
    asset, "query_results" (an asset per suite re-serializes the context's config each time,
    ~30 ms apiece)."""
    _buffer_query_results()
    frames = context.data_sources.add_pandas("query_results")
    frames.add_dataframe_asset("query_result").add_batch_definition_whole_dataframe("whole")
    return engine(settings).gx_datasource(context, "warehouse", warehouse.con)


def _buffer_query_results() -> None:
    """Make GX's SQL engine fetch each result before it releases the connection (see the
    module's docstring). The rows of a metric query are few (GX aggregates in the query); a
    ``FrozenResult`` holds them and answers ``fetchall``/``fetchone``/``scalar`` as the
    cursor would have."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    cls = engine.SqlAlchemyExecutionEngine
    if getattr(cls.execute_query, "_ops_buffered", False):
        return

    def execute_query(self, query):
        with self.get_connection() as connection:
            return self._execute_query_with_recovery(connection, query).freeze()()

    execute_query._ops_buffered = True
    cls.execute_query = execute_query


def _run_suite(
    context,
    datasource,
    warehouse: _Warehouse,
    suite: Suite,
    settings: Settings,
    as_of: date,
    run_id: str,
    params: dict[str, Any],
    scope: Scope | None = None,
) -> list[CheckResult]:
    """One suite's results; with a ``scope``, the row checks of a table suite read the rows of
    the newest loads only (see ``_scoped``)."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    out: list[CheckResult] = []
    batch_parameters = None
    try:
        if suite.table:
            columns = warehouse.columns(suite.table)
            if not columns:
                raise SuiteError(f"table {suite.table} does not exist")
            # a query, not a table asset: GX's table asset drops the schema on DuckDB
            asset = datasource.add_query_asset(
                suite.asset_name, query=f"select * from {suite.table}"
            )
            batch_definition = asset.add_batch_definition_whole_table("whole")
        else:
            frames = context.data_sources.get("query_results")
            batch_definition = frames.get_asset("query_result").get_batch_definition("whole")
            frame = warehouse.frame(_query_text(suite, settings, as_of, warehouse.con))
            batch_parameters = {"dataframe": frame}
    except Exception as exc:  # the data could not even be read: nothing can vouch for it
        return [
            CheckResult(
                suite.name, "readable", None, "block", False, None, f"error: {_first_line(exc)}"
            )
        ]

    if suite.contract and suite.table:
        out.append(_new_columns_check(suite, columns))
    if scope is not None and LOAD_MARK not in columns:
        scope = None  # a table the loaders did not stamp: whole, as on a full build

    suite_params = dict(params)
    if any(e.get("type") == ROW_COUNT_CHECK for e in suite.body.get("expectations", [])):
        band = volume_band(
            warehouse.row_count_history(suite.name, run_id), settings.volume_tolerance
        )
        suite_params["min_rows"], suite_params["max_rows"] = band

    # (GX suite name, batch, expectations (None: the suite's own), which rows, if not all)
    parts: list[tuple[str, Any, list[dict] | None, str | None]] = []
    if scope is None:
        parts.append((suite.name, batch_definition, None, None))
    else:
        on_table, by_key = _scoped(suite, scope)
        parts.append((suite.name, batch_definition, on_table, scope.rows))
        for key, checks in by_key.items():
            asset = datasource.add_query_asset(
                f"{suite.asset_name} {scope.keys} ({', '.join(key)})",
                query=scope.rows_sharing_keys(suite.table, key, warehouse.con.instant_type),
            )
            batch = asset.add_batch_definition_whole_table("whole")
            parts.append((f"{suite.name}.new_keys.{'.'.join(key)}", batch, checks, scope.keys))

    for name, batch, expectations, rows in parts:
        gx_suite = context.suites.add(_gx_suite(suite, expectations, name))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
        )
        validation = definition.run(
            batch_parameters=batch_parameters,
            expectation_parameters=suite_params,
            result_format=RESULT_FORMAT,
            run_id=RunIdentifier(run_name=run_id, run_time=datetime.now(UTC)),
        )
        for result in validation.results:
            scoped = result.expectation_config.type in ROW_CHECKS | KEY_CHECKS
            out.append(_check_result(suite.name, result, rows if scoped else None))
    return out


def _new_columns_check(suite: Suite, columns: list[str]) -> CheckResult:
    """Schema drift: a column the contract does not name (loader columns start with '_') is
    loaded, not dropped, and reported as a warning (docs/quality.md)."""
    known = set(entity(suite.contract).field_names)
    new = [c for c in columns if c not in known and not c.startswith("_")]
    return CheckResult(
        suite=suite.name,
        check="new_columns_outside_contract",
        column=None,
        severity="warn",
        success=not new,
        unexpected_count=len(new),
        observed_value=", ".join(new) if new else "none",
    )


def _check_result(suite_name: str, result, rows: str | None = None) -> CheckResult:
    """A GX result as a CheckResult; ``rows`` says which rows a check read when not the whole
    table (kept with what it observed, so dq_results and alerts say it)."""
    config = result.expectation_config
    meta = config.meta or {}
    kwargs = config.kwargs
    column = kwargs.get("column")
    if column is None and kwargs.get("column_list"):
        column = ", ".join(kwargs["column_list"])
    if column is None and kwargs.get("column_A"):
        column = f"{kwargs['column_A']}, {kwargs['column_B']}"
    details = result.result or {}
    unexpected = details.get("unexpected_count")
    error = _exception_message(result.exception_info)
    if error:
        observed = f"error: {error}"
    elif details.get("details", {}).get("mismatched"):
        # exact_match false: only missing columns matter (extra ones are the drift check's)
        mismatched = details["details"]["mismatched"]
        kinds = ["missing"] if kwargs.get("exact_match") is False else ["missing", "unexpected"]
        observed = "; ".join(
            f"{kind}: {', '.join(map(str, mismatched[kind]))}"
            for kind in kinds
            if mismatched.get(kind)
        )
        unexpected = len(mismatched.get("missing") or [])
    elif "observed_value" in details:
        observed = _text(details["observed_value"])
    elif unexpected:
        shown = details.get("partial_unexpected_list") or []
        observed = "unexpected: " + ", ".join(_text(v) for v in shown[:_SHOWN_VALUES])
    else:
        observed = None
    if rows:
        observed = f"{observed} ({rows})" if observed else rows
    return CheckResult(
        suite=suite_name,
        check=meta.get("check") or config.type,
        column=column,
        severity=meta["severity"],
        success=bool(result.success),
        unexpected_count=None if unexpected is None else int(unexpected),
        observed_value=observed,
    )


def _exception_message(info: dict | None) -> str | None:
    if not info:
        return None
    if info.get("raised_exception"):
        return _first_line(info.get("exception_message"))
    for nested in info.values():  # keyed by metric when a metric failed to compute
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return _first_line(nested.get("exception_message"))
    return None


def _first_line(value: Any) -> str:
    return str(value).strip().splitlines()[0] if str(value).strip() else type(value).__name__


def _text(value: Any) -> str:
    if hasattr(value, "item") and not isinstance(value, list | tuple | dict):
        value = value.item()  # numpy scalar
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value[:_SHOWN_VALUES]) + (
            " …" if len(value) > _SHOWN_VALUES else ""
        )
    if isinstance(value, tuple):
        return "(" + ", ".join(_text(v) for v in value) + ")"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# --- Data Docs ------------------------------------------------------------------------------


def build_data_docs(settings: Settings) -> Path:
    """Bring the static site under settings.home/data_docs up to date: pages for suites whose
    file changed and for shown validation results that have none yet (a page, once rendered, is
    kept), and the index. Returns index.html.

    The site shows the newest ``validation_results_limit`` results (great_expectations.yml, the
    index's own limit). Older results are moved out of GX's store into ``gx/validations_archive``
    (same layout; GX then drops their pages, its site mirrors its store), so that a build lists,
    reads and renders a bounded number of results however long the history: GX lists the whole
    store at every build, and matches each result against the pages asked for one by one. Every
    check result of every run stays in ``audit.dq_results``."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    context = _context(settings)
    site = data_docs_dir(settings)
    resources = _Resources()
    for suite in load_suites():
        context.suites.add(_gx_suite(suite))
        page = site.joinpath("expectations", *suite.name.split(".")).with_suffix(".html")
        if not page.is_file() or page.stat().st_mtime < suite.path.stat().st_mtime:
            resources.append(ExpectationSuiteIdentifier(name=suite.name))
    newest_first = sorted(
        context.validation_results_store.list_keys(),
        key=lambda key: key.run_id.run_time,
        reverse=True,
    )
    limit = shown_results_limit(context)
    archived = _archive_results(settings, [key.to_tuple() for key in newest_first[limit:]])
    for key in newest_first[:limit]:
        if not _key_file(site / "validations", key.to_tuple(), ".html").is_file():
            resources.append(key)
    if resources:  # (GX reads an empty list as "everything")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.build_data_docs(resource_identifiers=resources)
    index = data_docs_dir(settings) / "index.html"
    log.info(
        "Data Docs: %s (%d page(s) rendered, %d older result(s) archived)",
        index,
        len(resources),
        archived,
    )
    return index


def shown_results_limit(context) -> int:
    """How many validation results the Data Docs show: the index's ``validation_results_limit``
    (great_expectations.yml), as the context read it."""
    sites = (context.variables.data_docs_sites or {}).values()
    limits = [site.get("site_index_builder", {}).get("validation_results_limit") for site in sites]
    return min((int(n) for n in limits if n), default=500)


def archived_results_dir(settings: Settings) -> Path:
    return settings.home / "gx" / "validations_archive"


def _key_file(folder: Path, key: tuple[str, ...], suffix: str) -> Path:
    """Where GX keeps a key's file (a result's JSON, its page): its parts as folders, the last
    one's name plus the suffix (a batch id such as ``warehouse-marts.kpi_daily`` has a dot of
    its own, so ``with_suffix`` would cut it)."""
    return folder.joinpath(*key[:-1], f"{key[-1]}{suffix}")


def _archive_results(settings: Settings, keys: list[tuple[str, ...]]) -> int:
    """Move these validation results out of GX's store; return how many were moved."""
    store, archive = results_dir(settings), archived_results_dir(settings)
    moved = 0
    for key in keys:
        source = _key_file(store, key, ".json")
        if source.is_file():
            target = _key_file(archive, key, ".json")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            moved += 1
    return moved


class _Resources(list):
    """The resources a Data Docs build renders. GX asks ``key in resources`` for each result it
    lists, and its keys compare by rebuilding tuples (no hash): with a plain list that is a
    product of the two counts; here each test is one set lookup."""

    def __init__(self) -> None:
        super().__init__()
        self._tuples: set[tuple] = set()

    def append(self, key) -> None:
        super().append(key)
        self._tuples.add((type(key), key.to_tuple()))

    def __contains__(self, key) -> bool:
        return (type(key), key.to_tuple()) in self._tuples
