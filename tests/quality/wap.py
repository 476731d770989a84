"""Helpers of the write-audit-publish and alert tests: a private copy of the built marts
warehouse, a real local SMTP server, a local webhook receiver, an Airflow-like context."""

from __future__ import annotations

import dataclasses
import email
import hashlib
import http.server
import json
import shutil
import threading
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from types import SimpleNamespace

import pytest

from ops_warehouse.pipeline.audit import RunInfo
from ops_warehouse.pipeline.quality.results import CheckResult
from ops_warehouse.settings import Settings
from tests.helpers import free_port

LOGICAL_DATE = datetime(2026, 11, 23, tzinfo=UTC)

# Σ net_revenue of kpi_daily must equal Σ net_revenue of the recognized orders (docs/marts.md);
# both read in one query, i.e. from one snapshot.
RECONCILIATION_SQL = """
    select
        (select sum(net_revenue) from marts.kpi_daily) as kpi_net_revenue,
        (select sum(net_revenue) from marts.fct_orders where is_recognized) as orders_net_revenue
"""


# Check results as the GX runner returns them: one blocking failure, one pass, one warning.
BLOCKING = CheckResult(
    suite="kpi_daily.marts",
    check="expect_net_revenue_to_reconcile",
    column="net_revenue",
    severity="block",
    success=False,
    unexpected_count=1,
    observed_value="off by 12.34",
)
PASSED = CheckResult(
    suite="orders.raw",
    check="expect_column_values_to_be_unique",
    column="order_id",
    severity="block",
    success=True,
    unexpected_count=0,
)
WARNING = CheckResult(
    suite="orders.raw",
    check="expect_table_row_count_to_be_between",
    column=None,
    severity="warn",
    success=False,
    observed_value="41 rows",
)


def quarantine_row(
    settings: Settings,
    source: str,
    entity: str,
    key: str,
    reason: str,
    payload: dict,
    quarantined_at: str = "now()",
) -> None:
    """A quarantined row as the loaders write it into raw_<source>._quarantine."""
    import duckdb

    table = f"raw_{source}._quarantine"
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(
            f"create table if not exists {table} (source varchar, entity varchar, "
            "record_key varchar, reason varchar, payload varchar, run_id varchar, "
            "quarantined_at timestamp with time zone, _dlt_load_id varchar, _dlt_id varchar)"
        )
        con.execute(
            f"insert into {table} values (?, ?, ?, ?, ?, 'ingest', {quarantined_at}, '1', 'x')",
            [source, entity, key, reason, json.dumps(payload)],
        )


@pytest.fixture
def fixed_data_docs(monkeypatch):
    """Data Docs are the GX module's business (tested there); here they are a fixed path."""
    import ops_warehouse.pipeline.quality as quality

    monkeypatch.setattr(quality, "build_data_docs", lambda s: s.home / "data_docs" / "index.html")


def working_copy(built: Settings, home: Path, **overrides) -> Settings:
    """Settings on a private copy of a built working warehouse (the fixture stays as it is)."""
    import duckdb

    warehouse = home / "warehouse" / "working.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(built.warehouse_path)) as con:
        con.execute("checkpoint")  # dbt ran in this process: its last writes may be in the WAL
    shutil.copyfile(built.warehouse_path, warehouse)
    values = dict(
        home=home,
        warehouse_path=warehouse,
        published_path=home / "published" / "published.duckdb",
        alert_emails=(),
        alert_webhook_url="",
    )
    values.update(overrides)
    return dataclasses.replace(built, **values)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(run_id: str, dag_id: str = "transform") -> RunInfo:
    return RunInfo(dag_id, run_id, LOGICAL_DATE, LOGICAL_DATE, LOGICAL_DATE)


def airflow_context(run: RunInfo, task_id: str, exception: BaseException | None = None) -> dict:
    """The parts of an Airflow task context the pipeline reads."""
    ti = SimpleNamespace(
        dag_id=run.dag_id,
        task_id=task_id,
        run_id=run.run_id,
        log_url=f"http://airflow.test/dags/{run.dag_id}/runs/{run.run_id}/tasks/{task_id}",
    )
    return {
        "ti": ti,
        "run_id": run.run_id,
        "logical_date": run.logical_date,
        "data_interval_start": run.data_interval_start,
        "data_interval_end": run.data_interval_end,
        "exception": exception,
    }


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free local port, keeping every message it gets."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's API)
        message = email.message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted"

    @property
    def airflow_conn(self) -> str:
        """An Airflow connection URI (for AIRFLOW_CONN_SMTP_DEFAULT) pointing here."""
        return (
            f"smtp://127.0.0.1:{self.port}?disable_tls=true&disable_ssl=true"
            "&from_email=airflow%40ops.test&timeout=10&retry_limit=0"
        )

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


def message_text(message: Message) -> str:
    """Subject and every text part of a message, decoded."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(
                part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
            )
    return "\n".join(parts)


class WebhookSink:
    """A local HTTP server that keeps the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.posts.append(
                    {
                        "content_type": self.headers["Content-Type"],
                        "path": self.path,
                        "json": json.loads(body),
                    }
                )
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks/T000/B000/secret"

    def __enter__(self) -> WebhookSink:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
