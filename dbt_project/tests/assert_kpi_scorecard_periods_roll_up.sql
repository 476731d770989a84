{#
    Week and month values of kpi_scorecard agree with its day values (docs/marts.md: the same
    definitions over the whole period): a `sum` KPI is the Σ of its days, a `point_in_time` KPI
    (active_customers, open_backlog) is the value of the period's last day (period_end_date, the
    as-of date for the period in progress). Ratios and medians cannot be checked this way (unit
    tests cover them). Tolerance: half a cent, for the double sums of money. Returns the periods
    that differ.
#}

with

kpi_scorecard as (

    select * from {{ ref('kpi_scorecard') }}

),

kpi_definitions as (

    select * from {{ ref('kpi_definitions') }}

),

dim_date as (

    select * from {{ ref('dim_date') }}

),

day_values as (

    select
        kpi_scorecard.period_start as date_day,
        kpi_scorecard.kpi,
        kpi_scorecard.value,
        kpi_definitions.aggregation,
        dim_date.week_start,
        dim_date.month_start
    from kpi_scorecard
    inner join kpi_definitions
        on kpi_scorecard.kpi = kpi_definitions.kpi
    inner join dim_date
        on kpi_scorecard.period_start = dim_date.date_day
    where
        kpi_scorecard.period_grain = 'day'
        and kpi_definitions.aggregation in ('sum', 'point_in_time')

),

period_days as (

    select
        'week' as period_grain,
        week_start as period_start,
        date_day,
        kpi,
        value,
        aggregation
    from day_values

    union all

    select
        'month' as period_grain,
        month_start as period_start,
        date_day,
        kpi,
        value,
        aggregation
    from day_values

),

periods as (

    select
        period_grain,
        period_start,
        kpi,
        value,
        period_end_date
    from kpi_scorecard
    where period_grain in ('week', 'month')

),

expected as (

    select
        periods.period_grain,
        periods.period_start,
        periods.kpi,
        periods.value,
        max(period_days.aggregation) as aggregation,
        sum(period_days.value) as sum_of_days,
        max(case when period_days.date_day = periods.period_end_date then period_days.value end)
            as last_day_value
    from periods
    inner join period_days
        on
            periods.period_grain = period_days.period_grain
            and periods.period_start = period_days.period_start
            and periods.kpi = period_days.kpi
    group by
        periods.period_grain,
        periods.period_start,
        periods.kpi,
        periods.value

),

final as (

    select * from expected
    where
        (aggregation = 'sum' and abs(value - sum_of_days) >= 0.005)
        or (aggregation = 'point_in_time' and value is distinct from last_day_value)

)

select * from final
