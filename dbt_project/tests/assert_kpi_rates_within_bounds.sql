{#
    docs/quality.md: rates within [0, 1], on every grain of kpi_scorecard. Which KPIs are rates
    comes from the seed kpi_definitions: unit `share` (ctr, returning_customer_rate, sla_attainment,
    csat) must lie in [0, 1]; unit `fraction` (gross_margin_pct, a ratio of money that is negative
    when cogs exceed net revenue) at most 1. kpi_daily and int_kpi_periods_measured carry the same
    bounds as within_bounds column tests; this test also checks that the seed's units agree.
    Returns the rows that break a bound.
#}

with

kpi_scorecard as (

    select * from {{ ref('kpi_scorecard') }}

),

kpi_definitions as (

    select * from {{ ref('kpi_definitions') }}

),

bounded_values as (

    select
        kpi_scorecard.period_grain,
        kpi_scorecard.period_start,
        kpi_scorecard.kpi,
        kpi_definitions.unit,
        kpi_scorecard.value
    from kpi_scorecard
    inner join kpi_definitions
        on kpi_scorecard.kpi = kpi_definitions.kpi
    where kpi_definitions.unit in ('share', 'fraction')

),

final as (

    select * from bounded_values
    where
        value > 1
        or (unit = 'share' and value < 0)

)

select * from final
