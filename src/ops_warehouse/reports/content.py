"""What a report says, as data: scorecard rows, sentences, tables and chart inputs, every
value read from the published marts and formatted for the report's language."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ops_warehouse.reports import anomalies, data
from ops_warehouse.reports.formatting import Formatter, kpi_sort_key
from ops_warehouse.reports.i18n import Messages
from ops_warehouse.reports.periods import Period
from ops_warehouse.settings import Settings

# The daily digest's short scorecard
DAILY_KPIS = (
    "net_revenue",
    "orders",
    "new_customers",
    "spend",
    "blended_cac",
    "tickets_created",
    "open_backlog",
    "median_first_reply_minutes",
    "sla_attainment",
    "csat",
)
STATUS_COLOURS = {
    "on_track": "#1b7f3b",
    "at_risk": "#b26a00",
    "off_track": "#b3261e",
    "no_target": "#5f6368",
}


@dataclass(frozen=True)
class ScoreRow:
    kpi: str
    label: str
    value: float | None
    previous: float | None
    change_pct: float | None
    target: float | None
    attainment: float | None
    status: str | None
    higher_is_better: bool
    text: dict[str, str]  # the formatted cells

    @property
    def change_tone(self) -> str:
        """good / bad / flat, for colouring the change."""
        if self.change_pct is None or round(self.change_pct, 3) == 0:
            return "flat"
        return "good" if (self.change_pct > 0) == self.higher_is_better else "bad"


@dataclass
class Content:
    kind: str
    period: Period
    language: str
    currency: str
    title: str
    period_label: str
    subject: str
    as_of: date
    published_at: datetime | None
    stale: str | None
    columns: dict[str, str]
    scorecard: list[ScoreRow]
    month_start: date | None
    attainment_note: str | None
    attention: list[str]
    anomaly_rule: str
    anomalies: list[anomalies.Anomaly]
    chart_data: dict[str, Any]
    cost_benefit: list[dict[str, Any]]
    data_quality: dict[str, Any]
    data_docs: str | None
    footer: str
    generated_at: datetime
    m: Messages = field(repr=False)
    fmt: Formatter = field(repr=False)
    # set when the report goes out again with changed numbers (delivery.mark_correction)
    correction: str | None = None


def build(
    settings: Settings, period: Period, language: str, *, now: datetime | None = None
) -> Content:
    """Read everything one report shows from the published warehouse (one snapshot)."""
    m = Messages(language)
    fmt = Formatter(m, settings.reporting_currency)
    now = now or datetime.now(UTC)
    with data.published(settings) as db:
        fresh = data.freshness(db)
        if period.kind == "weekly":
            parts = _weekly(db, period, settings, m, fmt)
        else:
            parts = _daily(db, period, settings, m, fmt)
        dq = data.data_quality(db, period)
    covered_until = period.end
    stale = None
    if fresh.as_of < covered_until:
        published = (
            m("stale_published", published_at=fmt.timestamp(fresh.published_at))
            if fresh.published_at
            else ""
        )
        stale = m("stale", as_of=fmt.day(fresh.as_of), published=published)
    title = m(f"{period.kind}_title")
    label = _period_label(period, m, fmt)
    return Content(
        kind=period.kind,
        period=period,
        language=language,
        currency=settings.reporting_currency,
        title=title,
        period_label=label,
        subject=m(f"subject_{period.kind}", period=label),
        as_of=fresh.as_of,
        published_at=fresh.published_at,
        stale=stale,
        anomaly_rule=m("anomaly_rule", sigma=fmt.number(settings.anomaly_sigma, 1)),
        data_quality=dq,
        data_docs=_data_docs(settings),
        footer=m("footer", as_of=fmt.day(fresh.as_of), generated_at=fmt.timestamp(now)),
        generated_at=now,
        m=m,
        fmt=fmt,
        **parts,
    )


def _period_label(period: Period, m: Messages, fmt: Formatter) -> str:
    if period.kind == "weekly":
        year, week, _ = period.start.isocalendar()
        return m(
            "weekly_period",
            week=week,
            year=year,
            start=fmt.day_short(period.start),
            end=fmt.day_short(period.end),
        )
    return m("daily_period", day=fmt.day(period.start))


def _data_docs(settings: Settings) -> str | None:
    """Where the transform DAG's data_docs task keeps the Data Docs site, if it exists:
    its URL when ``OPS_DOCS_BASE_URL`` is set, else the file's."""
    from ops_warehouse.airflow.docs_site import served_url
    from ops_warehouse.pipeline.quality.gx_runner import data_docs_dir

    index = data_docs_dir(settings) / "index.html"
    if not index.is_file():
        return None
    return served_url(settings, index) or index.resolve().as_uri()


def _row(
    kpi: str,
    value,
    previous,
    change,
    target,
    attainment,
    status,
    higher,
    m: Messages,
    fmt: Formatter,
) -> ScoreRow:
    return ScoreRow(
        kpi=kpi,
        label=m.kpi(kpi),
        value=value,
        previous=previous,
        change_pct=change,
        target=target,
        attainment=attainment,
        status=status,
        higher_is_better=bool(higher),
        text={
            "value": fmt.kpi(kpi, value),
            "previous": fmt.kpi(kpi, previous),
            "change": fmt.signed_percent(change),
            "target": fmt.kpi(kpi, target) if target is not None else "",
            "attainment": fmt.percent(attainment) if attainment is not None else "",
            "status": m(f"status_{status}") if status else "",
        },
    )


def _anomaly_sentence(a: anomalies.Anomaly, m: Messages, fmt: Formatter) -> str:
    change = a.change_vs_mean
    key = f"anomaly_{a.direction}" + ("" if change is not None else "_no_change")
    return m(
        key,
        kpi=m.kpi(a.kpi),
        value=fmt.kpi(a.kpi, a.value),
        change=fmt.percent(abs(change), 0) if change is not None else "",
    )


def _weekly(db, period: Period, settings: Settings, m: Messages, fmt: Formatter) -> dict:
    week = {r["kpi"]: r for r in data.scorecard(db, "week", period.start)}
    month_start = period.end.replace(day=1)
    month = {r["kpi"]: r for r in data.scorecard(db, "month", month_start)}
    rows = []
    for kpi in sorted(week, key=kpi_sort_key):
        w, mo = week[kpi], month.get(kpi, {})
        rows.append(
            _row(
                kpi,
                w["value"],
                w["previous_value"],
                w["change_pct"],
                mo.get("target"),
                mo.get("target_attainment"),
                mo.get("status") or "no_target",
                w["higher_is_better"],
                m,
                fmt,
            )
        )
    history = data.kpi_history(
        db,
        "week",
        period.start - timedelta(weeks=anomalies.TRAILING),
        period.start - timedelta(weeks=1),
    )
    weeks = [period.start - timedelta(weeks=k) for k in range(anomalies.TRAILING, 0, -1)]
    found = anomalies.detect_all(
        {kpi: r["value"] for kpi, r in week.items()},
        {kpi: [h.get(d) for d in weeks] for kpi, h in history.items()},
        settings.anomaly_sigma,
    )
    attention = [
        m(
            "off_track",
            kpi=r.label,
            month=fmt.month(month_start),
            value=fmt.kpi(r.kpi, month[r.kpi]["value"]),
            target=r.text["target"],
            attainment=r.text["attainment"],
        )
        for r in rows
        if r.status == "off_track"
    ] + [_anomaly_sentence(a, m, fmt) for a in found]
    previous_month = (month_start - timedelta(days=1)).replace(day=1)
    channels = data.channel_months(db, [month_start, previous_month])
    support_weeks = data.kpi_history(db, "week", period.start - timedelta(weeks=7), period.start)
    return {
        "columns": {
            k: m(f"col_{k}")
            for k in ("kpi", "value", "previous", "change", "target", "attainment", "status")
        },
        "scorecard": rows,
        "month_start": month_start,
        "attainment_note": m("attainment_note", month=fmt.month(month_start)),
        "attention": attention,
        "anomalies": found,
        "chart_data": {
            "revenue_spend": data.daily_revenue_and_spend(db, period),
            "channels": [c for c in channels if c["month_start"] == month_start],
            "retention": data.retention(db, month_start),
            "support": {k: support_weeks.get(k, {}) for k in data.SUPPORT_KPIS},
            "month_start": month_start,
        },
        "cost_benefit": channels,
    }


def _daily(db, period: Period, settings: Settings, m: Messages, fmt: Formatter) -> dict:
    today = {r["kpi"]: r for r in data.scorecard(db, "day", period.start)}
    weeks = [period.start - timedelta(weeks=k) for k in range(anomalies.TRAILING, 0, -1)]
    history = data.kpi_history(db, "day", weeks[0], weeks[-1])
    rows = []
    for kpi in sorted((k for k in today if k in DAILY_KPIS), key=kpi_sort_key):
        value = today[kpi]["value"]
        before = history.get(kpi, {}).get(period.comparison_start)
        change = (value - before) / abs(before) if value is not None and before else None
        rows.append(
            _row(
                kpi, value, before, change, None, None, None, today[kpi]["higher_is_better"], m, fmt
            )
        )
    found = anomalies.detect_all(
        {kpi: r["value"] for kpi, r in today.items()},
        {kpi: [h.get(d) for d in weeks] for kpi, h in history.items()},
        settings.anomaly_sigma,
    )
    return {
        "columns": {
            "kpi": m("col_kpi"),
            "value": m("col_value_daily"),
            "previous": m("col_previous_daily"),
            "change": m("col_change"),
        },
        "scorecard": rows,
        "month_start": None,
        "attainment_note": None,
        "attention": [_anomaly_sentence(a, m, fmt) for a in found],
        "anomalies": found,
        "chart_data": {},
        "cost_benefit": [],
    }


def scorecard_csv_rows(content: Content) -> list[dict[str, Any]]:
    """The scorecard as plain values (the CSV attachment): unformatted, as the marts hold them."""
    grain = "week" if content.kind == "weekly" else "day"
    out = []
    for r in content.scorecard:
        out.append(
            {
                "period_grain": grain,
                "period_start": content.period.start.isoformat(),
                "kpi": r.kpi,
                "value": _plain(r.value),
                "previous_period_start": content.period.comparison_start.isoformat(),
                "previous_value": _plain(r.previous),
                "change_pct": _plain(r.change_pct),
                "month_start": content.month_start.isoformat() if content.month_start else "",
                "month_target": _plain(r.target),
                "month_target_attainment": _plain(r.attainment),
                "month_status": r.status or "",
            }
        )
    return out


def _plain(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value))
