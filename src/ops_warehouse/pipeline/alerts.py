"""Alerts to the data engineers: a failed task, a blocking check, warnings, a quarantine
above its threshold.

Two channels, each optional:
- email through the Airflow SMTP connection ``settings.smtp_conn_id`` (the SMTP provider's
  hook) to ``OPS_ALERT_EMAILS``;
- a chat webhook (``OPS_ALERT_WEBHOOK_URL``): one JSON POST, ``text`` for Slack/Mattermost
  style incoming webhooks plus the fields as data.

An alert names the DAG, task, run, logical date, the failing checks or the error, and the
task's log. Sending never raises: a broken mail server must not hide the failure being
reported, so every problem is logged instead. What a task's failure means for the run is the
task bodies' business (``airflow.tasks.on_task_failure``); this module only builds and sends.
"""

from __future__ import annotations

import html
import json
import logging
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from email.message import EmailMessage
from typing import Any

from ops_warehouse.redact import redact
from ops_warehouse.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    kind: str  # "task failed", "blocking checks failed", "checks warned"
    dag_id: str
    task_id: str
    run_id: str
    logical_date: str | None
    log_url: str | None
    failing_checks: Sequence[str] = field(default_factory=tuple)
    error: str | None = None
    data_docs: str | None = None

    @property
    def subject(self) -> str:
        return f"[ops-warehouse] {self.kind}: {self.dag_id}.{self.task_id} ({self.run_id})"

    def lines(self) -> list[str]:
        out = [
            f"{self.kind}",
            f"DAG: {self.dag_id}",
            f"Task: {self.task_id}",
            f"Run: {self.run_id}",
            f"Logical date: {self.logical_date or '-'}",
            f"Log: {self.log_url or '-'}",
        ]
        if self.data_docs:
            out.append(f"Data Docs: {self.data_docs}")
        if self.error:
            out.append(f"Error: {self.error}")
        if self.failing_checks:
            out.append(f"Failing checks ({len(self.failing_checks)}):")
            out += [f"  - {c}" for c in self.failing_checks]
        return out

    def text(self) -> str:
        return "\n".join(self.lines())

    def redacted(self) -> Alert:
        """The alert with the secrets in its free text masked: an error often quotes a URL
        or a connection string."""
        return replace(
            self,
            log_url=redact(self.log_url) if self.log_url else self.log_url,
            failing_checks=tuple(redact(check) for check in self.failing_checks),
            error=redact(self.error) if self.error else self.error,
            data_docs=redact(self.data_docs) if self.data_docs else self.data_docs,
        )

    def html(self) -> str:
        head, *rest = self.lines()
        body = "".join(f"<li>{html.escape(line.strip(' -'))}</li>" for line in rest)
        return f"<h3>{html.escape(head)}</h3><ul>{body}</ul>"

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["failing_checks"] = list(self.failing_checks)
        return {"text": f"{self.subject}\n" + "\n".join(self.lines()[1:]), **data}


def alert_from_context(
    context: Mapping[str, Any],
    kind: str,
    *,
    failing_checks: Sequence[str] = (),
    error: str | None = None,
    data_docs: str | None = None,
) -> Alert:
    """An alert about the task instance of an Airflow context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    logical_date = context.get("logical_date") or getattr(dag_run, "logical_date", None)
    log_url = None
    try:
        log_url = getattr(ti, "log_url", None)
    except Exception:  # the URL needs Airflow's config; an alert without it is still useful
        log.debug("no log URL for %s", ti, exc_info=True)
    return Alert(
        kind=kind,
        dag_id=getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", "?"),
        task_id=getattr(ti, "task_id", "?"),
        run_id=getattr(ti, "run_id", None) or context.get("run_id") or "?",
        logical_date=logical_date.isoformat() if logical_date is not None else None,
        log_url=log_url,
        failing_checks=tuple(failing_checks),
        error=error,
        data_docs=data_docs,
    )


def send_alert(alert: Alert, settings: Settings | None = None) -> dict[str, bool]:
    """Send one alert on every configured channel; return which channels delivered it."""
    settings = settings or get_settings()
    alert = alert.redacted()
    log.warning("ALERT %s", alert.text())
    return {"email": _send_email(alert, settings), "webhook": _post_webhook(alert, settings)}


def _send_email(alert: Alert, settings: Settings) -> bool:
    if not settings.alert_emails:
        log.info("no email alert sent: OPS_ALERT_EMAILS names no recipient")
        return False
    from ops_warehouse.airflow.smtp import SmtpNotConfigured, send_email_message

    message = EmailMessage()
    message["Subject"] = alert.subject
    message["To"] = ", ".join(settings.alert_emails)
    message.set_content(alert.text())
    message.add_alternative(alert.html(), subtype="html")
    try:
        send_email_message(settings, message)
    except SmtpNotConfigured as exc:
        log.warning("no email alert sent: %s", exc)
        return False
    except Exception:
        log.exception("email alert to %s failed", ", ".join(settings.alert_emails))
        return False
    log.info("email alert sent to %s", ", ".join(settings.alert_emails))
    return True


def _post_webhook(alert: Alert, settings: Settings) -> bool:
    if not settings.alert_webhook_url:
        return False
    request = urllib.request.Request(
        settings.alert_webhook_url,
        data=json.dumps(alert.payload()).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.http_timeout_s) as response:
            response.read()
    except Exception:
        log.exception("webhook alert failed (OPS_ALERT_WEBHOOK_URL)")
        return False
    log.info("webhook alert posted")
    return True
