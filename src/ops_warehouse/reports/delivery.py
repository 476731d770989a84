"""Sending a report: one email with an HTML and a plain-text alternative, the charts as
inline images (``cid:``), the PDF and the scorecard CSV attached; and a record of how it went.

The email goes through the Airflow SMTP connection, by the same path as the engineers'
alerts (``airflow.smtp.send_email_message``). A failed send is retried
``settings.report_send_attempts`` times, then recorded in ``delivery.json`` beside the
archived report and logged; it never raises: a report that could not be sent is still
archived, and the data pipeline does not depend on it.

A period's report goes out once: ``delivery.json`` keeps every send with a fingerprint of the
report's numbers. The same day published again with the same data (a re-run, a retried
publish) sends nothing; with other numbers the report goes out again, its subject and first
line saying it is a correction of the one sent before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from ops_warehouse.redact import redact
from ops_warehouse.reports.archive import Archived, sends
from ops_warehouse.reports.content import Content
from ops_warehouse.reports.render import Rendered
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)

# sent: delivered; failed: every attempt failed; not_configured: no SMTP connection;
# no_recipients: nobody to send to; not_sent: rendering only (the CLI without --send);
# already_sent: the same numbers went out before for the same period
STATUSES = ("sent", "failed", "not_configured", "no_recipients", "not_sent", "already_sent")


@dataclass
class Delivery:
    status: str
    recipients: list[str]
    attempts: list[dict] = field(default_factory=list)
    summary: str = ""
    recorded_at: str = ""
    fingerprint: str = ""  # of this rendering's numbers
    sends: list[dict] = field(default_factory=list)  # every send of the period, this one too


def fingerprint(content: Content) -> str:
    """What a report tells its reader, as a hash of its numbers: the as-of date, the
    scorecard, anomalies, charts and cost-benefit data, the failing checks and the rows
    quarantined. Not in it: when and in which language it was rendered, when the data was
    published, and how many runs the period had (publishing a day again with the same data
    adds a run and the same checks, not news)."""
    numbers = {
        "period": content.period.key,
        "as_of": content.as_of,
        "stale": content.stale is not None,
        "scorecard": [
            [r.kpi, r.value, r.previous, r.change_pct, r.target, r.attainment, r.status]
            for r in content.scorecard
        ],
        "anomalies": [[a.kpi, a.value, a.mean, a.stdev] for a in content.anomalies],
        "charts": content.chart_data,
        "cost_benefit": content.cost_benefit,
        "failing": content.data_quality["failing"],
        "quarantined": content.data_quality["quarantined"],
    }
    text = json.dumps(_keyed_by_text(numbers), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _keyed_by_text(value: Any) -> Any:
    """JSON needs text keys; chart data is keyed by dates."""
    if isinstance(value, dict):
        return {str(k): _keyed_by_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_keyed_by_text(v) for v in value]
    return value


def mark_correction(content: Content, earlier: list[dict]) -> None:
    """Make the report a correction when its period's report went out before with other
    numbers (``earlier``: the period's sends): the subject and the first line say so."""
    if not earlier or earlier[-1]["fingerprint"] == fingerprint(content):
        return
    sent_at = earlier[-1].get("at")
    when = content.fmt.timestamp(datetime.fromisoformat(sent_at)) if sent_at else "?"
    content.correction = content.m("correction", sent_at=when)
    content.subject = content.m("subject_correction", subject=content.subject)


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
    """Send the report (unless ``send`` is false, or the same numbers went out before for the
    same period) and record the outcome in delivery.json."""
    from ops_warehouse.airflow.smtp import SmtpNotConfigured, send_email_message

    content = rendered.content
    to = list(recipients(settings, content.kind))
    earlier = sends(archived.folder)
    numbers = fingerprint(content)
    if not send:
        result = Delivery("not_sent", to, summary="rendered and archived; not sent")
    elif earlier and earlier[-1]["fingerprint"] == numbers:
        result = Delivery(
            "already_sent",
            to,
            summary=f"not sent again: the same numbers went out at {earlier[-1]['at']}; "
            "rendered and archived",
        )
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
    result.fingerprint = numbers
    result.sends = earlier
    if result.status == "sent":
        result.sends = [
            *earlier,
            {
                "at": result.attempts[-1]["at"],
                "fingerprint": numbers,
                "subject": content.subject,
                "correction": content.correction is not None,
            },
        ]
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
                [{"at": at, "error": redact(str(exc))}],
                summary=f"not sent: {redact(str(exc))}; rendered and archived",
            )
        except Exception as exc:  # the server, the network, a refused recipient …
            # delivery.json is archived beside the report: no secret of the error in it
            attempts.append({"at": at, "error": redact(f"{type(exc).__name__}: {exc}")})
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
