"""Delivery through a real SMTP server: one email with HTML and text alternatives, the charts
inline, the PDF and CSV attached, to the report's recipients; no SMTP or a broken one never
fails the run, and what happened is recorded beside the archived report."""

from __future__ import annotations

import dataclasses
import json
import re
from email.header import decode_header, make_header

from ops_warehouse.reports import delivery
from ops_warehouse.reports.build import run_report
from tests.quality.wap import free_port
from tests.smtp import smtp_fixture  # noqa: F401 (the smtp fixture)


def _parts(message) -> dict[str, list]:
    out: dict[str, list] = {}
    for part in message.walk():
        out.setdefault(part.get_content_type(), []).append(part)
    return out


def test_weekly_report_arrives_with_every_part(published, smtp, tmp_path):
    settings = dataclasses.replace(published, reports_dir=tmp_path / "reports")
    run = run_report(settings, "weekly", period_key="2026-W47", language="en", send=True)
    assert run.delivery.status == "sent", run.delivery.summary
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["X-Envelope-To"] == ", ".join(settings.weekly_report_recipients)
    assert str(make_header(decode_header(message["Subject"]))) == run.rendered.content.subject
    assert message.get_content_type() == "multipart/mixed"
    parts = _parts(message)
    assert [p.get_content_type() for p in message.get_payload()[0].get_payload()] == [
        "text/plain",
        "multipart/related",
    ], "text and HTML alternatives"
    html = parts["text/html"][0].get_payload(decode=True).decode()
    text = parts["text/plain"][0].get_payload(decode=True).decode()
    assert "Headline scorecard" in html and "Headline scorecard" in text
    referenced = set(re.findall(r'src="cid:([^"]+)"', html))
    inline = {p["Content-ID"].strip("<>") for p in parts["image/png"]}
    assert referenced == inline == {c.name for c in run.rendered.charts}
    assert len(inline) == 5
    for image in parts["image/png"]:
        assert image.get_payload(decode=True).startswith(b"\x89PNG")
    (pdf,) = parts["application/pdf"]
    assert pdf.get_filename() == "ops-weekly-2026-W47.pdf"
    assert pdf.get_payload(decode=True) == run.archived.pdf.read_bytes()
    (table,) = parts["text/csv"]
    assert table.get_payload(decode=True).decode() == run.archived.csv.read_text()
    record = json.loads(run.archived.delivery.read_text())
    assert record["status"] == "sent" and record["recipients"] == list(
        settings.weekly_report_recipients
    )


def test_daily_digest_goes_to_its_own_recipients(published, smtp, tmp_path):
    settings = dataclasses.replace(published, reports_dir=tmp_path / "reports")
    run_report(settings, "daily", language="en", send=True)
    assert smtp.messages[0]["X-Envelope-To"] == ", ".join(settings.daily_digest_recipients)
    assert "application/pdf" in _parts(smtp.messages[0])


def test_without_smtp_the_report_is_archived_and_says_so(published, monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    settings = dataclasses.replace(
        published, reports_dir=tmp_path / "reports", smtp_conn_id="smtp_missing"
    )
    run = run_report(settings, "daily", language="en", send=True)
    assert run.delivery.status == "not_configured"
    assert "'smtp_missing' is not configured" in run.delivery.summary
    assert run.archived.html.is_file() and run.archived.pdf.is_file()
    assert json.loads(run.archived.delivery.read_text())["status"] == "not_configured"
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "daily/" in index and "not configured" in index


def test_a_failing_server_is_retried_and_recorded_never_raised(published, monkeypatch, tmp_path):
    nobody = free_port()  # nothing listens here
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f"smtp://127.0.0.1:{nobody}?disable_tls=true&disable_ssl=true&timeout=2&retry_limit=0",
    )
    settings = dataclasses.replace(
        published, reports_dir=tmp_path / "reports", report_send_attempts=3
    )
    run = run_report(settings, "daily", language="en", send=False)  # rendered, not sent
    waits: list[float] = []
    result = delivery.deliver(
        settings, run.rendered, run.archived, send=True, backoff_s=1.0, sleep=waits.append
    )
    assert result.status == "failed"
    assert len(result.attempts) == 3 and all(a["error"] for a in result.attempts)
    assert waits == [1.0, 2.0], "backs off between attempts, not after the last"
    record = json.loads(run.archived.delivery.read_text())
    assert record["status"] == "failed" and len(record["attempts"]) == 3


def test_text_part_reads_line_by_line_as_a_mail_client_shows_it(published, smtp, tmp_path):
    """The plain-text alternative, decoded from the message as sent: one scorecard KPI per
    line, sections apart, no line running into the next."""
    settings = dataclasses.replace(published, reports_dir=tmp_path / "reports")
    run = run_report(settings, "weekly", period_key="2026-W47", language="en", send=True)
    assert run.delivery.status == "sent", run.delivery.summary
    text = _parts(smtp.messages[-1])["text/plain"][0].get_payload(decode=True).decode()
    lines = text.splitlines()
    kpis = [line for line in lines if line.startswith("- ") and "(Week before " in line]
    assert len(kpis) == len(run.rendered.content.scorecard) > 10
    for line in kpis:
        assert line.count("(Week before ") == 1, f"two KPIs on one line: {line}"
    headings = [line for line in lines if line.startswith("== ")]
    assert headings == [
        "== Headline scorecard ==",
        "== What needs attention ==",
        "== Data quality ==",
    ]
    assert max(len(line) for line in lines) < 200, max(lines, key=len)
    quarantined = next(i for i, line in enumerate(lines) if line.startswith("Rows quarantined: "))
    assert lines[quarantined + 1].startswith(
        ("Open the Data Docs: ", "The Data Docs have not been built")
    )
