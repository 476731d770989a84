"""The weekly report's charts as PNG images (matplotlib's Agg backend: no display, no browser).

Titles and labels come from the message catalogue; CJK text is drawn with Noto Sans CJK SC
(Debian's fonts-noto-cjk), which is also the fallback for any glyph the Latin font lacks.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ops_warehouse.reports.content import Content

WIDTH_IN = 7.6  # 760 px at 100 dpi: fits an 800-px email with its margins
DPI = 150  # sharper on high-density screens and in the PDF; shown at 760 px wide
LATIN_FONT = "DejaVu Sans"
CJK_FONT = "Noto Sans CJK SC"
COLOURS = {
    "revenue": "#1a73e8",
    "spend": "#e8710a",
    "planned": "#9aa0a6",
    "good": "#1b7f3b",
    "third": "#9334e6",
}


@dataclass(frozen=True)
class Chart:
    name: str  # file name stem and email Content-ID
    title: str
    png: bytes


def render_all(content: Content) -> list[Chart]:
    """Every chart of a weekly report (the daily digest has none)."""
    if content.kind != "weekly":
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fonts = [CJK_FONT, LATIN_FONT] if content.language == "zh-CN" else [LATIN_FONT, CJK_FONT]
    charts = []
    with plt.rc_context(
        {
            "font.family": "sans-serif",
            "font.sans-serif": fonts,
            "axes.unicode_minus": False,
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        for name, title, draw in _charts(content):
            fig = plt.figure(figsize=(WIDTH_IN, 3.3), dpi=DPI)
            try:
                if not draw(fig):
                    fig.clear()
                    fig.text(0.5, 0.5, content.m("no_data"), ha="center", va="center")
                fig.suptitle(title, fontsize=11, fontweight="bold", x=0.01, ha="left")
                fig.tight_layout(rect=(0, 0, 1, 0.95))
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
            finally:
                plt.close(fig)
            charts.append(Chart(name, title, buf.getvalue()))
    return charts


def _charts(c: Content) -> list[tuple[str, str, Callable[[Any], bool]]]:
    month = c.fmt.month(c.chart_data["month_start"])
    return [
        ("revenue_spend", c.m("chart_revenue_spend"), lambda f: _revenue_spend(f, c)),
        ("cac_roas", c.m("chart_cac_roas", month=month), lambda f: _cac_roas(f, c)),
        ("retention", c.m("chart_retention"), lambda f: _retention(f, c)),
        ("support", c.m("chart_support"), lambda f: _support(f, c)),
        ("budget_pacing", c.m("chart_pacing", month=month), lambda f: _pacing(f, c)),
    ]


def _money_axis(ax, c: Content) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: c.fmt.money_short(v)))


def _revenue_spend(fig, c: Content) -> bool:
    rows = c.chart_data["revenue_spend"]
    if not rows:
        return False
    ax = fig.add_subplot()
    days = [r["date_day"] for r in rows]
    ax.plot(
        days,
        [r["net_revenue"] or 0 for r in rows],
        color=COLOURS["revenue"],
        label=c.m("legend_net_revenue"),
        linewidth=1.6,
    )
    ax.plot(
        days,
        [r["spend"] or 0 for r in rows],
        color=COLOURS["spend"],
        label=c.m("legend_spend"),
        linewidth=1.6,
    )
    ax.axvspan(c.period.start, c.period.end, color="#e8f0fe", zorder=0)
    _money_axis(ax, c)
    step = max(1, len(days) // 8)
    ax.set_xticks(days[::step], [c.fmt.day_short(d) for d in days[::step]])
    ax.legend(loc="upper left", frameon=False, ncols=2)
    ax.grid(axis="y", alpha=0.3)
    return True


def _paid(c: Content) -> list[dict]:
    return [r for r in c.chart_data["channels"] if (r["spend"] or 0) > 0]


def _cac_roas(fig, c: Content) -> bool:
    rows = _paid(c)
    if not rows:
        return False
    names = [c.m.channel(r["channel"]) for r in rows]
    cac_ax, roas_ax = fig.subplots(1, 2)
    cac = [r["cac"] or 0 for r in rows]
    roas = [r["roas_90d"] or 0 for r in rows]
    cac_ax.barh(names, cac, color=COLOURS["spend"])
    cac_ax.set_title(c.m("axis_cac"), fontsize=9)
    for y, v, r in zip(range(len(rows)), cac, rows, strict=True):
        cac_ax.text(v, y, " " + c.fmt.money(r["cac"]), va="center", fontsize=8)
    roas_ax.barh(names, roas, color=COLOURS["revenue"])
    roas_ax.set_title(c.m("axis_roas"), fontsize=9)
    roas_ax.set_yticks(range(len(rows)), [""] * len(rows))
    for y, v, r in zip(range(len(rows)), roas, rows, strict=True):
        roas_ax.text(v, y, " " + c.fmt.ratio(r["roas_90d"]), va="center", fontsize=8)
    for ax in (cac_ax, roas_ax):
        ax.invert_yaxis()
        ax.margins(x=0.3)
        ax.set_xticks([])
    return True


def _retention(fig, c: Content) -> bool:
    rows = c.chart_data["retention"]
    if not rows:
        return False
    cohorts = sorted({r["cohort_month"] for r in rows})
    width = max(r["months_since_first_order"] for r in rows) + 1
    grid = [[float("nan")] * width for _ in cohorts]
    for r in rows:
        if r["retention_rate"] is not None:
            grid[cohorts.index(r["cohort_month"])][r["months_since_first_order"]] = r[
                "retention_rate"
            ]
    ax = fig.add_subplot()
    # month 0 is 100 % by definition; the colour scale spreads over the later months
    later = [v for row in grid for v in row[1:] if v == v]
    top = max(later) if later else 1.0
    image = ax.imshow(grid, aspect="auto", cmap="Blues", vmin=0, vmax=max(top, 0.01))
    for y, row in enumerate(grid):
        for x, v in enumerate(row):
            if v == v:
                ax.text(
                    x,
                    y,
                    c.fmt.percent(v, 0),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if min(v, top) > top * 0.6 else "#202124",
                )
    ax.set_yticks(range(len(cohorts)), [c.fmt.month_short(m) for m in cohorts], fontsize=7)
    ax.set_xticks(range(width))
    ax.set_xlabel(c.m("axis_months_since"))
    ax.set_ylabel(c.m("axis_cohort"))
    fig.colorbar(image, ax=ax, fraction=0.03, format=lambda v, _: c.fmt.percent(v, 0))
    return True


def _support(fig, c: Content) -> bool:
    series = c.chart_data["support"]
    weeks = sorted({d for s in series.values() for d in s})
    if not weeks:
        return False
    share_ax, minutes_ax = fig.subplots(1, 2)
    labels = [c.fmt.day_short(w) for w in weeks]
    for kpi, key, colour in (
        ("sla_attainment", "legend_sla", COLOURS["good"]),
        ("csat", "legend_csat", COLOURS["revenue"]),
    ):
        share_ax.plot(
            labels, [series[kpi].get(w) for w in weeks], marker="o", color=colour, label=c.m(key)
        )
    share_ax.yaxis.set_major_formatter(lambda v, _: c.fmt.percent(v, 0))
    share_ax.set_title(c.m("axis_share"), fontsize=9)
    share_ax.legend(frameon=False, loc="lower left")
    minutes = [series["median_first_reply_minutes"].get(w) for w in weeks]
    minutes_ax.bar(labels, [v or 0 for v in minutes], color=COLOURS["third"])
    minutes_ax.set_title(c.m("axis_minutes"), fontsize=9)
    for ax in (share_ax, minutes_ax):
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    return True


def _pacing(fig, c: Content) -> bool:
    rows = [
        r
        for r in c.chart_data["channels"]
        if (r["spend"] or 0) > 0 or (r["planned_spend"] or 0) > 0
    ]
    if not rows:
        return False
    ax = fig.add_subplot()
    ys = range(len(rows))
    names = [c.m.channel(r["channel"]) for r in rows]
    ax.barh(
        [y - 0.2 for y in ys],
        [r["spend"] or 0 for r in rows],
        height=0.4,
        color=COLOURS["spend"],
        label=c.m("legend_spend_to_date"),
    )
    ax.barh(
        [y + 0.2 for y in ys],
        [r["planned_spend_to_date"] or 0 for r in rows],
        height=0.4,
        color=COLOURS["planned"],
        label=c.m("legend_planned_to_date"),
    )
    ax.scatter(
        [r["projected_spend"] or 0 for r in rows],
        ys,
        marker="D",
        color="#202124",
        zorder=3,
        label=c.m("legend_projected"),
    )
    ax.scatter(
        [r["planned_spend"] or 0 for r in rows],
        ys,
        marker="|",
        s=300,
        color="#b3261e",
        zorder=3,
        label=c.m("legend_planned"),
    )
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: c.fmt.money_short(v)))
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return True
