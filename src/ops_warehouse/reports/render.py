"""A report's files: HTML (Jinja2), plain text, PDF (WeasyPrint) and the scorecard CSV.

The HTML comes in two variants that differ only in where the chart images are: next to the
file in the archive (``charts/<name>.png``), or inline parts of the email (``cid:<name>``).
The PDF is the archive HTML with the images embedded.
"""

from __future__ import annotations

import base64
import csv
import io
import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ops_warehouse.reports.charts import Chart, render_all
from ops_warehouse.reports.content import STATUS_COLOURS, Content, scorecard_csv_rows

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass
class Rendered:
    content: Content
    charts: list[Chart]
    html: str  # images as charts/<name>.png (the archive)
    email_html: str  # images as cid:<name>
    text: str
    pdf: bytes
    csv: str
    seconds: dict[str, float] = field(default_factory=dict)


def _runs(dq: dict, status: str) -> int:
    return sum(1 for r in dq["runs"] if r["status"] == status)


def html(content: Content, charts: list[Chart], images: dict[str, str]) -> str:
    return (
        environment()
        .get_template(f"{content.kind}.html")
        .render(c=content, charts=charts, images=images, colours=STATUS_COLOURS, runs=_runs)
    )


def text(content: Content) -> str:
    return environment().get_template("report.txt").render(c=content)


def scorecard_csv(content: Content) -> str:
    rows = scorecard_csv_rows(content)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["kpi"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def pdf(page: str) -> bytes:
    import weasyprint

    # WeasyPrint reports every step at INFO; a report run needs only its problems
    logging.getLogger("weasyprint").setLevel(logging.WARNING)
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    return weasyprint.HTML(string=page).write_pdf()


def render(content: Content) -> Rendered:
    seconds = {}
    started = time.monotonic()
    charts = render_all(content)
    seconds["charts"] = time.monotonic() - started
    started = time.monotonic()
    archive_html = html(content, charts, {c.name: f"charts/{c.name}.png" for c in charts})
    email_html = html(content, charts, {c.name: f"cid:{c.name}" for c in charts})
    embedded = html(
        content,
        charts,
        {c.name: "data:image/png;base64," + base64.b64encode(c.png).decode() for c in charts},
    )
    body_text = text(content)
    table = scorecard_csv(content)
    seconds["html"] = time.monotonic() - started
    started = time.monotonic()
    document = pdf(embedded)
    seconds["pdf"] = time.monotonic() - started
    return Rendered(content, charts, archive_html, email_html, body_text, document, table, seconds)
