"""What readers see: the HTML in a real browser (headless Chromium) fits an 800-px email with
no broken image; the PDF has pages with the charts drawn; Chinese renders in both; every
word comes from the catalogue of the report's language; no personal data."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from babel.numbers import get_currency_symbol

from ops_warehouse.reports import i18n
from ops_warehouse.reports.formatting import KPI_UNITS
from ops_warehouse.settings import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EMAIL_WIDTH = 800
# Written into a copy of the page: after load, report broken images and anything wider than
# the email into the DOM, where --dump-dom shows it.
MEASURE = """
<script>
window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => i.getAttribute("src"));
  const wide = [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > __WIDTH__ + 0.5)
    .map(e => e.tagName + "." + e.className);
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({images: document.images.length, broken, wide,
    scrollWidth: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>
""".replace("__WIDTH__", str(EMAIL_WIDTH))


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={EMAIL_WIDTH},1200",
            "--virtual-time-budget=5000",
            "--run-all-compositor-stages-before-draw",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _measure(html: Path) -> dict:
    probe = html.with_name("measure.html")
    probe.write_text(
        html.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8"
    )
    try:
        dom = _chromium("--dump-dom", probe.as_uri()).stdout
    finally:
        probe.unlink()
    return json.loads(re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)[1])


def _pdf_pages(pdf: Path, out: Path) -> list[Path]:
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", str(pdf), str(out / "page")], check=True, timeout=120
    )
    return sorted(out.glob("page-*.png"))


def _ink(png: Path) -> float:
    """Share of pixels that are not (nearly) white."""
    from PIL import Image

    gray = Image.open(png).convert("L")
    histogram = gray.histogram()
    return sum(histogram[:230]) / sum(histogram)


@pytest.mark.parametrize("which", ["weekly", "weekly_zh"])
def test_html_fits_an_email_and_every_image_loads(which, request, tmp_path):
    run = request.getfixturevalue(which)
    measured = _measure(run.archived.html)
    assert measured["images"] == 5
    assert measured["broken"] == []
    assert measured["wide"] == [] and measured["scrollWidth"] <= EMAIL_WIDTH, measured
    shot = tmp_path / "report.png"
    _chromium(
        f"--screenshot={shot}", f"--window-size={EMAIL_WIDTH},4200", run.archived.html.as_uri()
    )
    assert shot.stat().st_size > 50_000 and _ink(shot) > 0.05


@pytest.mark.parametrize("which", ["weekly", "weekly_zh"])
def test_pdf_pages_show_the_charts(which, request, tmp_path):
    from pypdf import PdfReader

    run = request.getfixturevalue(which)
    pages = _pdf_pages(run.archived.pdf, tmp_path)
    assert len(pages) >= 3
    reader = PdfReader(run.archived.pdf)
    # WeasyPrint shares one resource dictionary between pages: count images by name
    images = {image.name for page in reader.pages for image in page.images}
    assert len(images) == 5, "every chart is in the PDF"
    # the pages holding charts carry far more ink than text-only pages would
    assert max(_ink(p) for p in pages) > 0.15
    text = "".join(page.extract_text() for page in reader.pages)
    title = i18n.Messages(run.rendered.content.language)("weekly_title")
    assert title in text.replace(" ", "").replace("\n", "") or title in text
    if run.rendered.content.language == "zh-CN":
        fonts = {
            str(f.get("/BaseFont"))
            for page in reader.pages
            for f in (page["/Resources"].get("/Font") or {}).values()
            for f in [f.get_object()]
        }
        assert any("CJK" in f for f in fonts), fonts


def test_chinese_report_uses_its_catalogue_and_locale(weekly_zh, published):
    html = weekly_zh.archived.html.read_text(encoding="utf-8")
    zh = i18n.Messages("zh-CN")
    for key in (
        "weekly_title",
        "section_scorecard",
        "section_attention",
        "section_charts",
        "section_cost_benefit",
        "section_data_quality",
    ):
        assert zh(key) in html
    assert "2026年11月" in html
    symbol = get_currency_symbol(published.reporting_currency, "zh_Hans_CN")
    assert symbol in html
    en = i18n.Messages("en")
    for key in ("section_scorecard", "section_attention", "col_kpi", "status_on_track"):
        assert en(key) not in html, f"English {key!r} left in the Chinese report"
    titles = [c.title for c in weekly_zh.rendered.charts]
    assert titles and all(re.search(r"[\u4e00-\u9fff]", t) for t in titles)


def test_catalogue_has_every_key_in_every_language():
    catalogue = json.loads(i18n.CATALOGUE.read_text(encoding="utf-8"))
    en = catalogue["en"]
    for language, messages in catalogue.items():
        assert set(messages) == set(en), language
        assert set(messages["kpi"]) == set(en["kpi"]) == set(KPI_UNITS), language


def test_kpi_units_follow_the_dbt_seed():
    with (PROJECT_ROOT / "dbt_project" / "seeds" / "kpi_definitions.csv").open() as fh:
        seed = {r["kpi"]: r["unit"] for r in csv.DictReader(fh)}
    assert KPI_UNITS == seed


def test_no_personal_data_in_any_report(weekly, daily, published):
    import duckdb

    with duckdb.connect(str(published.published_path), read_only=True) as con:
        hashes = {
            r[0]
            for r in con.execute(
                "select email_sha256 from marts.dim_customers limit 200"
            ).fetchall()
        }
        customers = {
            r[0]
            for r in con.execute("select customer_id from marts.dim_customers limit 200").fetchall()
        }
    for run in (weekly, daily):
        for path in (run.archived.html, run.archived.text, run.archived.csv):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text), f"an email address in {path}"
            assert not any(h in text for h in hashes)
            assert not any(f'"{c}"' in text or f">{c}<" in text for c in customers)
