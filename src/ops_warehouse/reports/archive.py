"""Every report under a dated folder of ``settings.reports_dir``, and an index of them all.

    reports/index.html
    reports/weekly/2026-W47/report.html, report.pdf, report.txt, scorecard.csv,
                            charts/*.png, delivery.json
    reports/daily/2026-11-24/…

Rendering the same period again replaces its folder as a whole (written beside it, then
swapped in), so a folder never mixes two renderings. Its ``delivery.json`` is carried over
until the new rendering's delivery replaces it: it records every time the period's report
was sent, and with which numbers, so that it is not sent twice (``delivery``).
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from ops_warehouse.reports.i18n import Messages
from ops_warehouse.reports.periods import KINDS, Period
from ops_warehouse.reports.render import Rendered, environment
from ops_warehouse.settings import Settings

DELIVERY_FILE = "delivery.json"


@dataclass(frozen=True)
class Archived:
    folder: Path

    @property
    def html(self) -> Path:
        return self.folder / "report.html"

    @property
    def pdf(self) -> Path:
        return self.folder / "report.pdf"

    @property
    def csv(self) -> Path:
        return self.folder / "scorecard.csv"

    @property
    def text(self) -> Path:
        return self.folder / "report.txt"

    @property
    def delivery(self) -> Path:
        return self.folder / DELIVERY_FILE


def folder(settings: Settings, period: Period) -> Path:
    return settings.reports_dir / period.kind / period.key


def store(settings: Settings, rendered: Rendered) -> Archived:
    """Write a rendered report into its dated folder and refresh the index."""
    target = folder(settings, rendered.content.period)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    (staged / "charts").mkdir(parents=True)
    (staged / "report.html").write_text(rendered.html, encoding="utf-8")
    (staged / "report.txt").write_text(rendered.text, encoding="utf-8")
    (staged / "report.pdf").write_bytes(rendered.pdf)
    (staged / "scorecard.csv").write_text(rendered.csv, encoding="utf-8")
    for chart in rendered.charts:
        (staged / "charts" / f"{chart.name}.png").write_bytes(chart.png)
    if (target / DELIVERY_FILE).is_file():
        shutil.copyfile(target / DELIVERY_FILE, staged / DELIVERY_FILE)
    retired = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    if target.exists():
        target.rename(retired)
    staged.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
    write_index(settings, rendered.content.language)
    return Archived(target)


def sends(folder: Path) -> list[dict]:
    """Every time the report archived in ``folder`` was sent, oldest first: ``at`` (ISO time),
    ``fingerprint`` (of its numbers), ``subject``, ``correction``."""
    path = folder / DELIVERY_FILE
    if not path.is_file():
        return []
    record = json.loads(path.read_text(encoding="utf-8"))
    if "sends" in record:
        return record["sends"]
    # a record written before sends were kept: its numbers are unknown
    if record.get("status") == "sent":
        return [{"at": record.get("recorded_at"), "fingerprint": None, "correction": False}]
    return []


def entries(settings: Settings) -> dict[str, list[dict]]:
    """Archived reports per kind, newest first, with how each was delivered."""
    out: dict[str, list[dict]] = {}
    for kind in KINDS:
        found = []
        base = settings.reports_dir / kind
        for path in sorted(base.glob("[0-9]*"), reverse=True) if base.is_dir() else []:
            if not (path / "report.html").is_file():
                continue
            delivery = ""
            if (path / DELIVERY_FILE).is_file():
                record = json.loads((path / DELIVERY_FILE).read_text(encoding="utf-8"))
                delivery = record.get("summary", "")
            found.append({"key": path.name, "path": f"{kind}/{path.name}", "delivery": delivery})
        out[kind] = found
    return out


def write_index(settings: Settings, language: str) -> Path:
    m = Messages(language)
    page = (
        environment()
        .get_template("index.html")
        .render(m=m, language=language, entries=entries(settings))
    )
    index = settings.reports_dir / "index.html"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(page, encoding="utf-8")
    return index


def latest(settings: Settings, kind: str) -> Archived | None:
    found = entries(settings).get(kind) or []
    return Archived(settings.reports_dir / found[0]["path"]) if found else None
