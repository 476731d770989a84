{#
    kpi_scorecard's day rows and kpi_daily hold the same values: both come from
    int_kpi_periods_measured, but kpi_daily is written incrementally and the scorecard in full,
    so a difference means an incremental run left a stale day behind (or a day is missing on
    either side). Returns each (day, kpi) that differs.
#}

with

kpi_daily as (

    select * from {{ ref('kpi_daily') }}

),

kpi_scorecard as (

    select * from {{ ref('kpi_scorecard') }}
    where period_grain = 'day'

),

daily_long as (

    {%- for kpi in kpi_metric_columns() %}
    select
        date_day,
        '{{ kpi }}' as kpi,
        cast({{ kpi }} as {{ contract_type('float') }}) as value
    from kpi_daily
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select
        coalesce(daily_long.date_day, kpi_scorecard.period_start) as date_day,
        coalesce(daily_long.kpi, kpi_scorecard.kpi) as kpi,
        daily_long.value as kpi_daily_value,
        kpi_scorecard.value as kpi_scorecard_value
    from daily_long
    full outer join kpi_scorecard
        on
            daily_long.date_day = kpi_scorecard.period_start
            and daily_long.kpi = kpi_scorecard.kpi
    where
        daily_long.date_day is null
        or kpi_scorecard.period_start is null
        or daily_long.value is distinct from kpi_scorecard.value

)

select * from final
