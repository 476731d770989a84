{#
    The metric columns of kpi_daily, in published order (docs/marts.md "kpi_daily"): one per row of
    the seed kpi_definitions. kpi_daily compares them with its published rows (incremental) and
    kpi_scorecard unpivots them into (kpi, value). Adding a KPI means a column in
    int_kpi_periods_measured, a name here and a row in the seed;
    tests/assert_kpi_definitions_match_kpi_daily.sql fails until all three agree.

        {% for kpi in kpi_metric_columns() %} ... {% endfor %}
#}
{% macro kpi_metric_columns() -%}
    {{ return([
        "spend",
        "impressions",
        "clicks",
        "ctr",
        "cpc",
        "cpm",
        "signups",
        "new_customers",
        "blended_cac",
        "orders",
        "gross_revenue",
        "net_revenue",
        "gross_margin",
        "gross_margin_pct",
        "aov",
        "active_customers",
        "returning_customer_rate",
        "tickets_created",
        "tickets_solved",
        "open_backlog",
        "median_first_reply_minutes",
        "median_full_resolution_minutes",
        "sla_attainment",
        "csat",
        "support_cost",
        "cost_per_ticket",
        "tickets_per_100_active",
    ]) }}
{%- endmacro %}
