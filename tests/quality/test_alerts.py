"""Alerts reach the data engineers: email through the Airflow SMTP connection (a real local
SMTP server here) and a chat webhook (a local HTTP server), naming DAG, task, run, logical
date, the failing checks and the log."""

from __future__ import annotations

import dataclasses
import logging

import duckdb
import pytest

from ops_warehouse.airflow.tasks import (
    QualityGateBlocked,
    enforce_quality_gate,
    on_task_failure,
    run_data_docs,
)
from ops_warehouse.pipeline import alerts, audit
from ops_warehouse.settings import Settings
from tests.quality.wap import (  # noqa: F401 (fixed_data_docs is a fixture)
    BLOCKING,
    PASSED,
    WARNING,
    WebhookSink,
    airflow_context,
    fixed_data_docs,
    message_text,
    run,
)
from tests.smtp import smtp_fixture  # noqa: F401 (the smtp fixture)


@pytest.fixture
def settings(tmp_path) -> Settings:
    """An empty working warehouse: alerts and the audit trail need nothing else."""
    return dataclasses.replace(
        Settings.from_env(),
        home=tmp_path,
        warehouse="duckdb",
        warehouse_path=tmp_path / "working.duckdb",
        published_path=tmp_path / "published.duckdb",
        alert_emails=("data-eng@ops.test", "oncall@ops.test"),
        alert_webhook_url="",
        smtp_conn_id="smtp_default",
        docs_base_url="https://airflow.example.com/ops",
    )


# Alerts link the Data Docs where Airflow serves them, never a file on the pipeline's machine.
DATA_DOCS_URL = "https://airflow.example.com/ops/data-docs/index.html"


pytestmark = pytest.mark.usefixtures("fixed_data_docs")


def test_blocking_checks_email_names_dag_task_run_date_checks_and_log(settings, smtp):
    this = run("scheduled__2026-11-23T00:00:00+00:00")
    audit.record_run_start(settings, this)
    context = airflow_context(this, "validate_marts")
    with pytest.raises(QualityGateBlocked):
        enforce_quality_gate(settings, this, "marts", [PASSED, WARNING, BLOCKING], context)

    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    text = message_text(message)
    assert message["X-Envelope-To"] == "data-eng@ops.test, oncall@ops.test"
    assert message["From"] == "airflow@ops.test"
    assert "blocking checks failed" in message["Subject"]
    for expected in (
        "transform",  # DAG
        "validate_marts",  # task
        "scheduled__2026-11-23T00:00:00+00:00",  # run
        "2026-11-23T00:00:00+00:00",  # logical date
        "kpi_daily.marts expect_net_revenue_to_reconcile (net_revenue) FAILED",  # the check
        "orders.raw expect_table_row_count_to_be_between",  # and the warning
        context["ti"].log_url,  # where the log is
        DATA_DOCS_URL,  # the Data Docs
    ):
        assert expected in text, f"{expected!r} missing from the alert:\n{text}"
    assert "expect_column_values_to_be_unique" not in text, "passed checks are not alerted"


def test_warnings_are_alerted_and_the_run_goes_on(settings, smtp):
    this = run("scheduled__2026-11-24")
    audit.record_run_start(settings, this)
    summary = enforce_quality_gate(
        settings, this, "raw", [PASSED, WARNING], airflow_context(this, "validate_raw")
    )
    assert summary == {
        "checks": 2,
        "warnings": 1,
        "data_docs": DATA_DOCS_URL,
    }
    assert len(smtp.messages) == 1
    assert "checks warned" in smtp.messages[0]["Subject"]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("select status from audit.pipeline_runs").fetchone() == ("running",)


def test_passing_checks_send_nothing(settings, smtp):
    this = run("scheduled__2026-11-25")
    summary = enforce_quality_gate(
        settings, this, "raw", [PASSED], airflow_context(this, "validate_raw")
    )
    assert smtp.messages == []
    assert summary == {"checks": 1, "warnings": 0}, "a clean raw layer leaves the docs alone"


def test_a_clean_marts_gate_leaves_the_data_docs_to_their_own_task(settings, smtp, monkeypatch):
    import ops_warehouse.pipeline.quality as quality

    built = []
    monkeypatch.setattr(
        quality, "build_data_docs", lambda s: built.append(s) or s.home / "data_docs" / "index.html"
    )
    this = run("scheduled__2026-11-25")
    summary = enforce_quality_gate(
        settings, this, "staging/marts", [PASSED], airflow_context(this, "validate_marts")
    )
    assert smtp.messages == []
    assert summary == {"checks": 1, "warnings": 0}
    assert built == [], "the gate did not wait for the docs"

    monkeypatch.setattr("ops_warehouse.settings.get_settings", lambda: settings)
    assert run_data_docs(airflow_context(this, "data_docs")) == {"data_docs": DATA_DOCS_URL}
    assert built == [settings]
    assert smtp.messages == []


def test_webhook_gets_the_alert_as_json(settings, smtp):
    with WebhookSink() as hook:
        settings = dataclasses.replace(settings, alert_webhook_url=hook.url)
        alert = alerts.alert_from_context(
            airflow_context(run("manual__1"), "validate_raw"),
            "blocking checks failed",
            failing_checks=[BLOCKING.describe()],
        )
        assert alerts.send_alert(alert, settings) == {"email": True, "webhook": True}
    assert len(hook.posts) == 1
    post = hook.posts[0]
    assert post["content_type"] == "application/json"
    assert post["path"] == "/hooks/T000/B000/secret"
    body = post["json"]
    assert body["dag_id"] == "transform" and body["task_id"] == "validate_raw"
    assert body["run_id"] == "manual__1"
    assert body["logical_date"] == "2026-11-23T00:00:00+00:00"
    assert body["failing_checks"] == [BLOCKING.describe()]
    assert body["log_url"].endswith("/dags/transform/runs/manual__1/tasks/validate_raw")
    assert "expect_net_revenue_to_reconcile" in body["text"]


def test_without_a_connection_no_email_is_sent_and_that_is_logged(settings, monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    alert = alerts.alert_from_context(airflow_context(run("manual__2"), "publish"), "task failed")
    with caplog.at_level(logging.INFO, logger="ops_warehouse.pipeline.alerts"):
        assert alerts.send_alert(alert, settings) == {"email": False, "webhook": False}
    assert "no email alert sent: Airflow connection 'smtp_default' is not configured" in caplog.text


def test_failure_callback_records_the_failed_run_and_alerts(settings, smtp, monkeypatch):
    monkeypatch.setattr("ops_warehouse.settings.get_settings", lambda: settings)
    this = run("scheduled__2026-11-26")
    audit.record_run_start(settings, this)
    error = RuntimeError("dbt build failed: fct_orders: error")
    on_task_failure(airflow_context(this, "dbt_build", exception=error))

    assert len(smtp.messages) == 1
    text = message_text(smtp.messages[0])
    assert "task failed" in text and "dbt_build" in text and "fct_orders: error" in text
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        status, message = con.execute(
            "select status, message from audit.pipeline_runs where run_id = ?", [this.run_id]
        ).fetchone()
    assert status == "failed" and "dbt_build: RuntimeError" in message


def test_failure_callback_keeps_what_the_task_already_recorded(settings, smtp, monkeypatch):
    """Blocked: the task recorded and alerted. Published: a later task failing (Data Docs)
    does not turn a published run into a failed one."""
    monkeypatch.setattr("ops_warehouse.settings.get_settings", lambda: settings)
    blocked, published = run("run_blocked"), run("run_published")
    audit.record_run_finish(settings, blocked, "blocked", message="checks")
    audit.record_run_finish(settings, published, "published")
    on_task_failure(
        airflow_context(blocked, "validate_raw", exception=QualityGateBlocked("checks"))
    )
    assert smtp.messages == [], "a blocked task has alerted already"
    on_task_failure(airflow_context(published, "data_docs", exception=OSError("disk")))
    assert len(smtp.messages) == 1
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        statuses = dict(con.execute("select run_id, status from audit.pipeline_runs").fetchall())
    assert statuses == {"run_blocked": "blocked", "run_published": "published"}
