{#-
    One row per business day from the earliest date of any source to the as-of date (docs/marts.md
    "kpi_daily"): the day rows of int_kpi_periods_measured, where every metric is defined. Days
    without activity have zeros and NULL ratios.

    Incremental, delete+insert on date_day. Late updates change past days: a refund weeks later
    changes its order date's net revenue, a ticket solved or re-rated today changes the day it was
    created (SLA, first reply) or rated, an ad restatement or fx correction changes spend, and one
    order changes active_customers for 90 days. Rather than tracking each input's watermark, the
    table is its own watermark (as fct_orders and fct_ad_performance_daily): every run recomputes
    every day upstream (a few hundred rows per year) and writes only the days that are new or
    differ from {{ this }} in any column. A full refresh and any sequence of incremental runs give
    the same rows by construction. The post-hook removes days no longer in the calendar (a re-run
    for an earlier as-of date).
-#}
{{
    config(
        materialized=incremental_materialization(),
        unique_key='date_day',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook=incremental_post_hooks([
            "delete from {{ this }} where date_day not in ("
            ~ "select period_start from {{ ref('int_kpi_periods_measured') }}"
            ~ " where period_grain = 'day')",
        ]),
    )
}}

{%- set kpi_columns = kpi_metric_columns() %}

with

periods_measured as (

    select * from {{ ref('int_kpi_periods_measured') }}

),

daily_kpis as (

    select
        period_start as date_day,
        {%- for kpi in kpi_columns %}
        {{ kpi }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from periods_measured
    where period_grain = 'day'

),

{% if is_incremental() %}

published as (

    select * from {{ this }}

),

changed_days as (

    -- new days, and days whose row differs from the published one in any column
    select daily_kpis.*
    from daily_kpis
    left join published
        on daily_kpis.date_day = published.date_day
    where
        published.date_day is null
        {%- for kpi in kpi_columns %}
        or daily_kpis.{{ kpi }} is distinct from published.{{ kpi }}
        {%- endfor %}

),

final as (

    select * from changed_days

)

{% else %}

final as (

    select * from daily_kpis

)

{% endif %}

select * from final
