"""Sending a report: one email with an HTML and a plain-text alternative, the charts as
inline images (``cid:``), the PDF and the scorecard CSV attached; and a record of how it went.

The email goes through the Airflow SMTP connection, by the same path as the engineers'
alerts (``alerts.send_email_message``). A failed send is retried
``settings.report_send_attempts`` times, then recorded in ``delivery.json`` beside the
archived report and logged; it never raises: a report that could not be sent is still
archived, and the data pipeline does not depend on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage

from ops_warehouse.reports.archive import Archived
from ops_warehouse.reports.render import Rendered
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)

# sent: delivered; failed: every attempt failed; not_configured: no SMTP connection;
# no_recipients: nobody to send to; not_sent: rendering only (the CLI without --send)
STATUSES = ("sent", "failed", "not_configured", "no_recipients", "not_sent")


@dataclass
class Delivery:
    status: str
    recipients: list[str]
    attempts: list[dict] = field(default_factory=list)
    summary: str = ""
    recorded_at: str = ""


RECIPIENT_SETTINGS = {"weekly": "OPS_WEEKLY_REPORT_TO", "daily": "OPS_DAILY_DIGEST_TO"}


def recipients(settings: Settings, kind: str) -> tuple[str, ...]:
    return (
        settings.weekly_report_recipients if kind == "weekly" else settings.daily_digest_recipients
    )


def message(rendered: Rendered, to: Sequence[str]) -> EmailMessage:
    """The report as one email: text and HTML alternatives, inline charts, attachments."""
    content = rendered.content
    msg = EmailMessage()
    msg["Subject"] = content.subject
    msg["To"] = ", ".join(to)
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.email_html, subtype="html")
    html_part = msg.get_payload()[1]
    for chart in rendered.charts:
        html_part.add_related(
            chart.png,
            "image",
            "png",
            cid=f"<{chart.name}>",
            filename=f"{chart.name}.png",
            disposition="inline",
        )
    stem = f"ops-{content.kind}-{content.period.key}"
    msg.add_attachment(rendered.pdf, "application", "pdf", filename=f"{stem}.pdf")
    msg.add_attachment(
        rendered.csv.encode("utf-8"), "text", "csv", filename=f"{stem}-scorecard.csv"
    )
    return msg


def deliver(
    settings: Settings,
    rendered: Rendered,
    archived: Archived,
    *,
    send: bool = True,
    backoff_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send the report (unless ``send`` is false) and record the outcome in delivery.json."""
    from ops_warehouse.pipeline.alerts import SmtpNotConfigured, send_email_message

    to = list(recipients(settings, rendered.content.kind))
    if not send:
        result = Delivery("not_sent", to, summary="rendered and archived; not sent")
    elif not to:
        setting = RECIPIENT_SETTINGS[rendered.content.kind]
        result = Delivery(
            "no_recipients",
            to,
            summary=f"not sent: no recipients configured ({setting}); rendered and archived",
        )
    else:
        result = _send(
            settings, rendered, to, backoff_s, sleep, SmtpNotConfigured, send_email_message
        )
    result.recorded_at = datetime.now(UTC).isoformat()
    archived.delivery.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    (log.info if result.status in ("sent", "not_sent") else log.warning)(
        "%s %s: %s (%s)",
        rendered.content.kind,
        rendered.content.period.key,
        result.summary,
        archived.delivery,
    )
    return result


def _send(settings, rendered, to, backoff_s, sleep, not_configured, send_email_message) -> Delivery:
    attempts: list[dict] = []
    total = max(1, settings.report_send_attempts)
    for attempt in range(1, total + 1):
        at = datetime.now(UTC).isoformat()
        try:
            send_email_message(settings, message(rendered, to))
        except not_configured as exc:
            return Delivery(
                "not_configured",
                to,
                [{"at": at, "error": str(exc)}],
                summary=f"not sent: {exc}; rendered and archived",
            )
        except Exception as exc:  # the server, the network, a refused recipient …
            attempts.append({"at": at, "error": f"{type(exc).__name__}: {exc}"})
            log.warning("sending the report failed (attempt %d of %d): %s", attempt, total, exc)
            if attempt < total:
                sleep(backoff_s * 2 ** (attempt - 1))
            continue
        attempts.append({"at": at, "error": None})
        return Delivery("sent", to, attempts, summary=f"sent to {', '.join(to)}")
    return Delivery(
        "failed",
        to,
        attempts,
        summary=f"sending failed {total} time(s), last: {attempts[-1]['error']}; archived only",
    )
