"""Errors are classified once (``errors.is_permanent``) and applied in one place
(``airflow.tasks.fails_fast``): a permanent error fails the task at once, without Airflow's
retries; a transient one keeps them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException

from ops_warehouse.airflow import tasks
from ops_warehouse.errors import (
    SourceConfigError,
    SourceDataError,
    SourceSchemaError,
    SourceUnavailableError,
    is_permanent,
)
from ops_warehouse.pipeline.loading import QuarantineThresholdExceeded
from ops_warehouse.pipeline.reconciliation import SourceGapError
from ops_warehouse.pipeline.transform import DbtFailed

PERMANENT = [
    SourceConfigError("support: the API refused the token (401)"),
    SourceSchemaError("support.tickets: required field 'status' is missing"),
    SourceDataError("marketing.budget: file budget_2026-11-01.csv, line 2: not UTF-8"),
    QuarantineThresholdExceeded("marketing.budget: 1 of 2 rows broke row-level rules"),
    SourceGapError("sales.orders: the source holds 10 rows, raw 9"),
    DbtFailed(
        "dbt build failed: stg_marketing__budgets: error Conversion Error: invalid date field "
        'format: "Nov 2026-01"'
    ),
    DbtFailed("dbt build failed: assert_kpi_daily_net_revenue_reconciles: fail 1"),
    DbtFailed("dbt build failed: Compilation Error in model fct_orders: 'x' is undefined"),
]
TRANSIENT = [
    SourceUnavailableError("support: the API answered 503 on every attempt"),
    DbtFailed("dbt build failed: IO Error: Could not set lock on file working.duckdb"),
    DbtFailed("dbt build failed: connection to server failed: Connection refused"),
    DbtFailed("dbt build failed: dbt was killed by signal 9; "),
    TimeoutError("read timed out"),
    RuntimeError("something nobody classified"),
]


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: f"{type(e).__name__}: {str(e)[:40]}")
def test_a_permanent_error_fails_the_task_at_once(exc):
    assert is_permanent(exc)
    calls = []

    @tasks.fails_fast()
    def body():
        calls.append(1)
        raise exc

    with pytest.raises(AirflowFailException) as err:  # Airflow does not retry these
        body()
    assert isinstance(err.value, tasks.PermanentFailure) and err.value.__cause__ is exc
    assert str(exc) in str(err.value) and type(exc).__name__ in str(err.value)
    assert calls == [1]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: f"{type(e).__name__}: {str(e)[:40]}")
def test_a_transient_error_keeps_the_task_retries(exc):
    assert not is_permanent(exc)

    @tasks.fails_fast()
    def body():
        raise exc

    with pytest.raises(type(exc)) as err:
        body()
    assert err.value is exc and not isinstance(err.value, AirflowFailException)


def test_a_load_that_fails_for_good_is_a_blocked_load():
    @tasks.fails_fast(tasks.LoadBlocked)
    def load():
        raise SourceDataError("support.tickets: the page at http://x/tickets is not JSON")

    with pytest.raises(tasks.LoadBlocked, match="support.tickets"):
        load()


def test_a_dbt_data_error_fails_the_dbt_task_without_retry(monkeypatch):
    """The measured failure: a bad month in raw made `dbt build` fail and be retried twice
    (279 s) although the same data fails the same way."""
    from ops_warehouse.pipeline import transform

    attempts = []

    def failing_dbt(args, **kwargs):
        attempts.append(args)
        raise DbtFailed(
            "dbt build failed: stg_marketing__budgets: error Conversion Error: invalid date "
            'field format: "Nov 2026-01"'
        )

    monkeypatch.setattr(transform, "dbt_invoke", failing_dbt)
    with pytest.raises(AirflowFailException, match="stg_marketing__budgets"):
        tasks.run_dbt_build({"data_interval_end": datetime(2026, 11, 23, tzinfo=UTC)})
    assert len(attempts) == 1


def test_every_task_body_is_classified():
    for body in (tasks.run_load, tasks.run_validation, tasks.run_dbt_build, tasks.run_publish):
        assert hasattr(body, "__wrapped__"), f"{body.__name__} is not decorated by fails_fast"
