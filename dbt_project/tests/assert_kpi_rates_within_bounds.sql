{#
    quality.md: rates within [0, 1]. In kpi_daily ctr, returning_customer_rate, sla_attainment and
    csat are shares between 0 and 1; gross_margin_pct is a ratio of money that can be negative
    (cogs above net revenue) but never above 1 (cogs >= 0, refunds capped at gross). In
    kpi_scorecard every KPI whose unit is `share` (seed kpi_definitions) is in [0, 1] at every
    grain, every `fraction` at most 1. Returns the rows that break a bound.
#}

with

kpi_daily as (

    select * from {{ ref('kpi_daily') }}

),

kpi_scorecard as (

    select * from {{ ref('kpi_scorecard') }}

),

kpi_definitions as (

    select * from {{ ref('kpi_definitions') }}

),

daily_values as (

    {%- for kpi in ['ctr', 'returning_customer_rate', 'sla_attainment', 'csat', 'gross_margin_pct'] %}
    select
        'day' as period_grain,
        date_day as period_start,
        '{{ kpi }}' as kpi,
        cast({{ kpi }} as double precision) as value,
        -- no lower bound (null) for gross_margin_pct
        cast({{ "null" if kpi == 'gross_margin_pct' else "0" }} as double precision) as lower_bound,
        cast(1 as double precision) as upper_bound,
        'kpi_daily' as model_name
    from kpi_daily
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

scorecard_values as (

    select
        kpi_scorecard.period_grain,
        kpi_scorecard.period_start,
        kpi_scorecard.kpi,
        kpi_scorecard.value,
        cast(case when kpi_definitions.unit = 'share' then 0 end as double precision) as lower_bound,
        cast(1 as double precision) as upper_bound,
        'kpi_scorecard' as model_name
    from kpi_scorecard
    inner join kpi_definitions
        on kpi_scorecard.kpi = kpi_definitions.kpi
    where kpi_definitions.unit in ('share', 'fraction')

),

checked_values as (

    select * from daily_values
    union all
    select * from scorecard_values

),

final as (

    select * from checked_values
    where value < lower_bound
        or value > upper_bound

)

select * from final
