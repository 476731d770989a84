"""The "Ops overview" Superset dashboard as code: its datasets, charts and layout.

bi/provision.py creates or updates each of them through Superset's REST API. Every dataset
reads schema ``marts`` of the published warehouse (docs/marts.md), the same on DuckDB and
PostgreSQL; the two virtual datasets pick the latest month in SQL that both engines run.

Chart parameters are Superset's own form data (what Explore saves); the few helpers below
only spell the recurring pieces once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TITLE = "Ops overview"
SLUG = "ops-overview"
SCHEMA = "marts"


@dataclass(frozen=True)
class Dataset:
    name: str  # a table of ``marts``, or the name of a virtual dataset
    sql: str | None = None  # a virtual dataset's query


@dataclass(frozen=True)
class Chart:
    name: str
    dataset: str
    params: dict[str, Any]  # Superset's form data; provision adds the datasource
    width: int  # columns of the dashboard's 12
    height: int = 56  # grid units (8 px)


@dataclass(frozen=True)
class Markdown:
    text: str  # a template: {reports}, {data_docs} and {dbt_docs} become the served URLs
    width: int
    height: int = 56
    name: str = field(default="links")


DATASETS = (
    Dataset("kpi_daily"),
    Dataset("kpi_scorecard"),
    Dataset("retention_cohorts"),
    Dataset("channel_roi_monthly"),
    Dataset(
        "scorecard_month_to_date",
        """
        select kpi, value, previous_value, change_pct, target, target_attainment, status,
            period_start
        from marts.kpi_scorecard
        where period_grain = 'month'
            and period_start = (
                select max(period_start) from marts.kpi_scorecard where period_grain = 'month'
            )
        """,
    ),
    Dataset(
        "budget_pacing_month_to_date",
        """
        select channel, month_start, spend, planned_spend, planned_spend_to_date,
            projected_spend, budget_utilization
        from marts.channel_roi_monthly
        where planned_spend is not null
            and month_start = (select max(month_start) from marts.channel_roi_monthly)
        """,
    ),
)


def metric(sql: str, label: str) -> dict[str, Any]:
    return {"expressionType": "SQL", "sqlExpression": sql, "label": label, "hasCustomLabel": True}


def where(column: str, operator: str, value: Any = None) -> dict[str, Any]:
    """An adhoc filter: ``==``, ``IN``, ``>``, ``IS TRUE`` …"""
    out = {"clause": "WHERE", "expressionType": "SIMPLE", "subject": column, "operator": operator}
    if value is not None:
        out["comparator"] = value
    return out


def no_time_filter(column: str) -> dict[str, Any]:
    """The time-range filter Explore puts on every time series, open on both ends."""
    return where(column, "TEMPORAL_RANGE", "No filter")


def time_series(
    x_axis: str,
    grain: str,
    metrics: list[dict[str, Any]],
    filters: list[dict[str, Any]],
    *,
    groupby: tuple[str, ...] = (),
    kind: str = "line",
    number_format: str = "SMART_NUMBER",
) -> dict[str, Any]:
    return {
        "viz_type": f"echarts_timeseries_{kind}",
        "x_axis": x_axis,
        "time_grain_sqla": grain,
        "metrics": metrics,
        "groupby": list(groupby),
        "adhoc_filters": [no_time_filter(x_axis), *filters],
        "row_limit": 10000,
        "show_legend": True,
        "legendOrientation": "top",
        "rich_tooltip": True,
        "y_axis_format": number_format,
        "x_axis_time_format": "smart_date",
        "time_range": "No filter",
    }


def kpi_against_target(kpi: str, label: str) -> dict[str, Any]:
    """A KPI's monthly value beside its target (the kpi_targets sheet), from kpi_scorecard."""
    return time_series(
        "period_start",
        "P1M",
        [metric("max(value)", label), metric("max(target)", "Target")],
        [where("period_grain", "==", "month"), where("kpi", "==", kpi)],
    )


CHARTS = (
    Chart(
        "Net revenue against target, by month",
        "kpi_scorecard",
        kpi_against_target("net_revenue", "Net revenue"),
        4,
    ),
    Chart(
        "New customers against target, by month",
        "kpi_scorecard",
        kpi_against_target("new_customers", "New customers"),
        4,
    ),
    Chart(
        "Scorecard, month to date",
        "scorecard_month_to_date",
        {
            "viz_type": "table",
            "query_mode": "raw",
            "all_columns": ["kpi", "value", "target", "target_attainment", "status"],
            "order_by_cols": ['["kpi", true]'],
            "column_config": {
                "value": {"d3NumberFormat": ",.4~f"},
                "target": {"d3NumberFormat": ",.4~f"},
                "target_attainment": {"d3NumberFormat": ".0%"},
            },
            "adhoc_filters": [],
            "row_limit": 100,
            "table_timestamp_format": "smart_date",
            "time_range": "No filter",
        },
        6,
        72,
    ),
    Chart(
        "Net revenue and ad spend, by week",
        "kpi_daily",
        time_series(
            "date_day",
            "P1W",
            [metric("sum(net_revenue)", "Net revenue"), metric("sum(spend)", "Ad spend")],
            [],
        ),
        6,
        72,
    ),
    Chart(
        "Retention by cohort",
        "retention_cohorts",
        {
            "viz_type": "heatmap_v2",
            "x_axis": "months_since_first_order",
            "groupby": "cohort_month",
            "metric": metric("max(retention_rate)", "Retention"),
            "adhoc_filters": [],
            "row_limit": 10000,
            "normalize_across": "heatmap",
            "linear_color_scheme": "schemeBlues",
            "sort_x_axis": "alpha_asc",
            "sort_y_axis": "alpha_asc",
            "y_axis_format": ".0%",
            "show_values": False,
            "show_legend": True,
            "time_format": "%Y-%m",
            "time_range": "No filter",
        },
        6,
        80,
    ),
    Chart(
        "90-day ROAS by channel (complete windows)",
        "channel_roi_monthly",
        time_series(
            "month_start",
            "P1M",
            [metric("max(roas_90d)", "ROAS, 90 days")],
            [where("is_window_complete", "IS TRUE"), where("spend", ">", 0)],
            groupby=("channel",),
        ),
        6,
        80,
    ),
    Chart(
        "Budget pacing, month to date",
        "budget_pacing_month_to_date",
        {
            "viz_type": "echarts_timeseries_bar",
            "x_axis": "channel",
            "metrics": [
                metric("sum(spend)", "Spend to date"),
                metric("sum(planned_spend_to_date)", "Plan to date"),
                metric("sum(projected_spend)", "Projected"),
                metric("sum(planned_spend)", "Plan, whole month"),
            ],
            "groupby": [],
            "adhoc_filters": [],
            "row_limit": 100,
            "show_legend": True,
            "legendOrientation": "top",
            "y_axis_format": "SMART_NUMBER",
            "x_axis_sort_asc": True,
            "time_range": "No filter",
        },
        6,
    ),
    Chart(
        "SLA attainment and CSAT, by week",
        "kpi_scorecard",
        time_series(
            "period_start",
            "P1W",
            [metric("max(value)", "Value")],
            [where("period_grain", "==", "week"), where("kpi", "IN", ["sla_attainment", "csat"])],
            groupby=("kpi",),
            number_format=".0%",
        ),
        6,
    ),
)

LINKS = Markdown(
    """### Ops overview

The published warehouse (schema `marts`), as of its latest publish. Every chart is read
when the dashboard opens: a publish shows at the next refresh.

- [Weekly reports and daily digests]({reports})
- [Data quality: Great Expectations Data Docs]({data_docs})
- [Definitions of every mart and column: dbt docs]({dbt_docs})
""",
    width=4,
)

# rows of the dashboard, top to bottom: chart names, and the links tile
ROWS: tuple[tuple[str, ...], ...] = (
    (LINKS.name, CHARTS[0].name, CHARTS[1].name),
    (CHARTS[2].name, CHARTS[3].name),
    (CHARTS[4].name, CHARTS[5].name),
    (CHARTS[6].name, CHARTS[7].name),
)
