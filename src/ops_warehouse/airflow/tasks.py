"""Task bodies called from the DAGs: they turn Airflow's context into plain calls.

Only cheap imports at module level: ``dag_factory`` imports this module (for the failure
callback) when DAG files are parsed; the task bodies import the heavy modules they need.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from ops_warehouse.errors import OpsWarehouseError, is_permanent
from ops_warehouse.redact import redact_exception

if TYPE_CHECKING:
    from ops_warehouse.pipeline.audit import RunInfo
    from ops_warehouse.pipeline.quality.results import CheckResult
    from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)


class PermanentFailure(AirflowFailException, OpsWarehouseError):
    """A task stopped on something a retry cannot change (``errors.is_permanent``): Airflow
    fails it at once, without its retries, and the alert names the cause."""

    permanent = True


class QualityGateBlocked(PermanentFailure):
    """Blocking checks failed: the task fails at once (a retry would see the same data) and
    the run does not publish. Results are recorded and the alert sent before it is raised."""


class LoadBlocked(PermanentFailure):
    """A load stopped on something a retry cannot change (a rejected token, a missing or
    renamed required field, a malformed file or page, a quarantine above its threshold, raw
    short of the source): the task fails at once, raw stays as it was, nothing downstream
    runs and the alert names the cause."""


P = ParamSpec("P")
R = TypeVar("R")


def fails_fast(
    failure: type[PermanentFailure] = PermanentFailure,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a task body: an error that is permanent (errors.is_permanent) is raised again
    as ``failure``, which Airflow does not retry; a transient one keeps the task's retries.
    The one place where the classification meets Airflow, and where an error's secrets are
    masked (``redact``) before Airflow logs its traceback."""

    def decorate(body: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(body)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return body(*args, **kwargs)
            except AirflowFailException as exc:
                redact_exception(exc)  # Airflow logs its traceback next: no secret in it
                raise
            except Exception as exc:
                redact_exception(exc)
                if is_permanent(exc):
                    raise failure(f"{type(exc).__name__}: {exc}") from exc
                raise

        return run

    return decorate


@fails_fast(LoadBlocked)
def run_load(
    source: str, interval_start: datetime | None, interval_end: datetime | None, run_id: str | None
) -> dict:
    """Load one source, sweep orphans into quarantine, and record the run in the audit trail."""
    from ops_warehouse.pipeline import audit
    from ops_warehouse.pipeline.loading import load_source
    from ops_warehouse.pipeline.quarantine import sweep
    from ops_warehouse.pipeline.reconciliation import SourceGapError, reconcile
    from ops_warehouse.pipeline.reconciliation import check as check_reconciliation
    from ops_warehouse.pipeline.sources.window import Window
    from ops_warehouse.settings import get_settings
    from ops_warehouse.warehouse.databases import ensure_working_database
    from ops_warehouse.warehouse.engines import engine

    if interval_end is None:
        raise ValueError("the run has no data interval end; trigger it with a logical date")
    settings = get_settings()
    ensure_working_database(settings, error=LoadBlocked)
    window = Window.of(interval_start, interval_end)
    run = audit.RunInfo(
        dag_id=f"ingest_{source}",
        run_id=run_id or "manual",
        data_interval_start=window.start,
        data_interval_end=window.end,
    )
    # the working file open once for the task, not at each read (engines.DuckDB.held)
    with engine(settings).held():
        audit.record_run_start(settings, run, as_of=window.last_day)
        try:
            summary = load_source(source, window, run_id=run.run_id, settings=settings)
            swept = sweep(settings, as_of_end=window.end, run_id=run.run_id, touching=source)
            started = time.monotonic()
            reconciled = {r.entity: r for r in reconcile(settings, source, window, summary)}
            reconcile_s = round(time.monotonic() - started, 2)
        except Exception as exc:
            audit.record_run_finish(settings, run, "failed", message=str(exc))
            raise
        for name, stats in summary.entities.items():
            log.info(
                "%s.%s: %d rows read, %d loaded, %d quarantined",
                source,
                name,
                stats.rows_read,
                stats.rows_loaded,
                stats.rows_quarantined,
            )
        for rule, moved in swept.items():
            if moved:
                log.warning("quarantine sweep: %d row(s) moved (%s)", moved, rule)
        entities = [
            audit.EntityCounts(
                source,
                name,
                s.rows_read,
                s.rows_loaded,
                s.rows_quarantined,
                source_rows=reconciled[name].source_rows if name in reconciled else None,
                raw_rows=reconciled[name].raw_rows if name in reconciled else None,
            )
            for name, s in summary.entities.items()
        ]
        try:
            check_reconciliation(list(reconciled.values()))
        except SourceGapError as exc:
            audit.record_run_finish(settings, run, "failed", message=str(exc), entities=entities)
            raise
        audit.record_run_finish(settings, run, "succeeded", entities=entities)
    return {
        "source": source,
        "as_of_date": window.last_day.isoformat(),
        "window": [window.start.isoformat(), window.end.isoformat()],
        "seconds": round(summary.seconds, 2),
        "entities": {n: vars(s) for n, s in summary.entities.items()},
        "swept": {rule: n for rule, n in swept.items() if n},
        "source_rows": {n: r.source_rows for n, r in reconciled.items()},
        "reconcile_s": reconcile_s,
    }


def as_of_from_events(triggering_asset_events, data_interval_end: datetime | None) -> date:
    """The as-of date a transform run covers.

    Asset-triggered: the oldest of the newest as-of dates each raw asset reported (the
    marts must not run ahead of the source that is furthest behind). Manual or `dags test`
    runs have no events: the day before their data interval end.
    """
    latest: dict[str, str] = {}
    for asset, events in (triggering_asset_events or {}).items():
        for event in events:
            value = (event.extra or {}).get("as_of_date")
            if value and value > latest.get(str(asset), ""):
                latest[str(asset)] = value
    if latest:
        return date.fromisoformat(min(latest.values()))
    if data_interval_end is None:
        raise ValueError("transform needs triggering asset events or a data interval")
    return (data_interval_end - timedelta(microseconds=1)).date()


# --- transform: validate → dbt build → validate → publish -------------------------------


def run_info(context: Mapping[str, Any]) -> RunInfo:
    """The DAG run a task belongs to, as the audit trail identifies it."""
    from ops_warehouse.pipeline.audit import RunInfo

    dag_run = context.get("dag_run")
    ti = context.get("ti")
    return RunInfo(
        dag_id=getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", "manual"),
        run_id=context.get("run_id") or getattr(ti, "run_id", None) or "manual",
        logical_date=context.get("logical_date"),
        data_interval_start=context.get("data_interval_start"),
        data_interval_end=context.get("data_interval_end"),
    )


def on_task_start(context: Mapping[str, Any]) -> None:
    """``on_execute_callback`` of every task: keep the settings' secrets out of its log.

    The project's log records are redacted as they are created (``redact``); Airflow's own
    lines, its traceback of a failed task among them, go through Airflow's masker, which is
    told every secret the settings hold (in this process and in the supervisor that writes
    the log)."""
    from airflow.sdk.log import mask_secret

    from ops_warehouse.redact import install_log_redaction, remembered
    from ops_warehouse.settings import get_settings

    get_settings()  # building the settings hands their secrets to redact
    install_log_redaction()
    for secret in remembered():
        mask_secret(secret)


def on_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every task: record the run as failed and alert.

    A task that failed because checks blocked has already recorded and alerted (it knows
    the checks); this callback then stays silent."""
    from ops_warehouse.pipeline.alerts import alert_from_context, send_alert
    from ops_warehouse.settings import get_settings

    exc = context.get("exception")
    if isinstance(exc, QualityGateBlocked):
        log.info("blocked by checks: recorded and alerted by the task")
        return
    settings = get_settings()
    alert = alert_from_context(
        context,
        "load blocked" if isinstance(exc, LoadBlocked) else "task failed",
        error=f"{type(exc).__name__}: {exc}" if exc else None,
    )
    try:
        from ops_warehouse.pipeline import audit

        audit.record_run_finish(
            settings,
            run_info(context),
            "failed",
            message=f"{alert.task_id}: {alert.error or 'failed'}",
            only_if_running=True,
        )
    except Exception:
        log.exception("could not record the failed run in audit.pipeline_runs")
    send_alert(alert, settings)


def transform_as_of(context: Mapping[str, Any]) -> date:
    return as_of_from_events(
        context.get("triggering_asset_events"), context.get("data_interval_end")
    )


def transform_mode(settings: Settings, context: Mapping[str, Any], as_of: date):
    """Full build or incremental day (pipeline/run_mode.py): the run's conf
    (``{"full_rebuild": true|false}``) or else the weekday of its as-of date."""
    from ops_warehouse.pipeline.run_mode import requested_in, run_mode

    conf = getattr(context.get("dag_run"), "conf", None)
    return run_mode(settings, as_of, requested=requested_in(conf))


def enforce_quality_gate(
    settings: Settings,
    run: RunInfo,
    layer: str,
    results: Sequence[CheckResult],
    context: Mapping[str, Any],
) -> dict:
    """Record a layer's check results; on blocking failures mark the run blocked, alert and
    raise ``QualityGateBlocked``; on warnings alert and go on. The Data Docs are rebuilt here
    when something failed (the alert links them); after a clean gate the transform DAG's
    ``data_docs`` task rebuilds them beside ``publish`` (``run_data_docs``)."""
    from ops_warehouse.pipeline import audit
    from ops_warehouse.pipeline.alerts import alert_from_context, send_alert

    audit.record_dq_results(settings, run, results)
    blocking = [r for r in results if r.is_blocking_failure]
    warned = [r for r in results if not r.success and not r.is_blocking_failure]
    for result in blocking + warned:
        log.warning("%s", result.describe())
    log.info(
        "%s checks: %d run, %d blocking failures, %d warnings",
        layer,
        len(results),
        len(blocking),
        len(warned),
    )
    if not (blocking or warned):
        return {"checks": len(results), "warnings": 0}
    docs = data_docs(settings)
    checks = [r.describe() for r in blocking + warned]
    if blocking:
        message = (
            f"{len(blocking)} blocking {layer} check(s) failed, nothing was published: "
            + "; ".join(r.describe() for r in blocking[:5])
            + (f"; … and {len(blocking) - 5} more" if len(blocking) > 5 else "")
        )
        audit.record_run_finish(settings, run, "blocked", message=message)
        send_alert(
            alert_from_context(
                context, "blocking checks failed", failing_checks=checks, data_docs=docs
            ),
            settings,
        )
        raise QualityGateBlocked(message)
    send_alert(
        alert_from_context(context, "checks warned", failing_checks=checks, data_docs=docs),
        settings,
    )
    return {"checks": len(results), "warnings": len(warned), "data_docs": docs}


def data_docs(settings: Settings) -> str | None:
    """Rebuild the Data Docs site and return where it is: its URL when ``OPS_DOCS_BASE_URL`` is
    set (Airflow's API server serves it), else its file (None, logged, if that failed: the
    docs illustrate a run, they must not decide it)."""
    try:
        from ops_warehouse.airflow.docs_site import served_url
        from ops_warehouse.pipeline.quality import build_data_docs

        index = build_data_docs(settings)
        path = served_url(settings, index) or str(index)
    except Exception:
        log.exception("building the Data Docs failed")
        return None
    print(f"Data Docs: {path}")
    return path


def run_data_docs(context: Mapping[str, Any]) -> dict:
    """The transform DAG's ``data_docs`` task: bring the Data Docs site up to date with the
    run's check results, whatever the gates decided (a gate that blocked or warned has
    rebuilt them already, for its alert: then only the index is read again). It runs beside
    ``publish``, outside the writer pool: it reads Great Expectations' result files, not the
    warehouse, so the published marts do not wait for it (0.8 s at scale 10)."""
    from ops_warehouse.settings import get_settings

    return {"data_docs": data_docs(get_settings())}


def alert_only(context: Mapping[str, Any], kind: str) -> None:
    """The failure callback of a task that does not write the working warehouse (the reports,
    ``data_docs``): alert the data engineers with the task's error and record nothing, unlike
    ``on_task_failure``."""
    from ops_warehouse.pipeline.alerts import alert_from_context, send_alert

    exc = context.get("exception")
    send_alert(
        alert_from_context(context, kind, error=f"{type(exc).__name__}: {exc}" if exc else None)
    )


def on_docs_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of ``data_docs``: the docs illustrate a run; its status in
    ``audit.pipeline_runs`` is its gates' and ``publish``'s, and this task holds no claim on
    the working warehouse to write it."""
    alert_only(context, "Data Docs failed")


@fails_fast()
def run_validation(layers: Sequence[str], context: Mapping[str, Any]) -> dict:
    """Run the Great Expectations suites of some layers and enforce the gate on all their
    results together: on an incremental day (``transform_mode``) row checks read only the rows
    loaded since the layer's gate last passed, on a full build whole tables; once the gate
    passed, the newest loads checked are recorded. Validating raw starts the run's audit
    record. A clean run's Data Docs are the ``data_docs`` task's (``run_data_docs``)."""
    from ops_warehouse.pipeline import audit
    from ops_warehouse.pipeline.quality import run_layers
    from ops_warehouse.pipeline.quality.gx_runner import newest_loads
    from ops_warehouse.settings import get_settings
    from ops_warehouse.warehouse.databases import ensure_working_database

    settings = get_settings()
    ensure_working_database(settings, error=AirflowFailException)
    run = run_info(context)
    as_of = transform_as_of(context)
    mode = transform_mode(settings, context, as_of)
    if "raw" in layers:
        audit.record_run_start(settings, run, as_of)
    # what these checks cover: the watermark recorded once the gate passed
    loads = newest_loads(settings, layers)
    log.info("validating %s as of %s: %s", ", ".join(layers), as_of, mode.describe())
    results = run_layers(settings, layers, as_of, run.run_id, full=mode.full)
    gate_s = None
    if "marts" in layers:
        from ops_warehouse.pipeline.completeness import run_gate

        started = time.monotonic()
        results += run_gate(settings, as_of)
        gate_s = round(time.monotonic() - started, 2)
    summary = enforce_quality_gate(settings, run, "/".join(layers), results, context)
    audit.record_validated_loads(settings, run, loads)  # not reached when the gate blocked
    timing = {"completeness_s": gate_s} if gate_s is not None else {}
    return {
        "as_of_date": as_of.isoformat(),
        "layers": list(layers),
        "full_build": mode.full,
        **summary,
        **timing,
    }


@fails_fast()
def run_dbt_build(context: Mapping[str, Any]) -> dict:
    """`dbt build` as of the run's as-of date: on a full build (``transform_mode``)
    ``--full-refresh`` and every data test, on an incremental day the engine's daily selector
    (dbt_project/selectors.yml: every model, the marts' tests and the singular tests; the
    marts' not_null tests only where the tables do not enforce NOT NULL, i.e. on Spark).

    dbt's unit tests check the models' SQL against fixed rows, not the night's data: they
    run with the project's tests on every change, not in each pipeline run."""
    from ops_warehouse.pipeline.transform import dbt_invoke
    from ops_warehouse.settings import get_settings
    from ops_warehouse.warehouse.engines import engine

    settings = get_settings()
    as_of = transform_as_of(context)
    mode = transform_mode(settings, context, as_of)
    args = ["build", "--exclude-resource-type", "unit_test"]
    warehouse = engine(settings)
    args += ["--full-refresh"] if mode.full else ["--selector", warehouse.daily_selector]
    warehouse.prepare_build()  # Spark: the raw tables that changed, into the lake
    log.info("dbt build as of %s: %s", as_of, mode.describe())
    # an incremental day leaves dbt's manifest.json as the last full build wrote it, where dbt
    # runs forked (transform.dbt_invoke)
    dbt_invoke(args, as_of=as_of, manifest=mode.full)
    return {"as_of_date": as_of.isoformat(), "full_build": mode.full}


@fails_fast()
def run_publish(context: Mapping[str, Any]) -> dict:
    """Publish marts and audit for readers; the run is then recorded as published."""
    from ops_warehouse.settings import get_settings
    from ops_warehouse.warehouse.publish import publish_marts

    settings = get_settings()
    as_of = transform_as_of(context)
    published = publish_marts(settings, run_info(context))
    print(
        f"Published warehouse (as of {as_of}): {published.where}; marts republished: "
        f"{', '.join(published.republished) or 'none'}; kept: {len(published.kept)}"
    )
    return {
        "as_of_date": as_of.isoformat(),
        "published": published.where,
        "republished": list(published.republished),
        "kept": list(published.kept),
    }
