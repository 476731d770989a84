{#-
    The KPI scorecard (docs/marts.md "kpi_scorecard"), long: one row per period grain (`day`,
    `week`, `month`) x period x KPI of the seed kpi_definitions, from the first day of data to the
    as-of date. Values come from int_kpi_periods_measured (same definitions at every grain: Σ for
    sums, ratios from summed components, medians over the period's rows, active_customers and
    open_backlog on the period's last day, the as-of date for the period in progress).

    - previous_value: the value of the period before (same grain); change_pct = (value -
      previous_value) / previous_value, NULL when previous_value is 0 or NULL. The period in
      progress is compared with the whole period before.
    - target: monthly only, from stg_marketing__kpi_targets. For the month in progress a `sum`
      KPI's target is prorated: target x elapsed days / days in month; ratio, median and
      point-in-time targets are levels, not prorated. Day and week rows have no target.
    - target_attainment = value / target, or target / value when lower is better (NULL when that
      denominator is 0); status: >= 1 on_track, >= 0.9 at_risk, else off_track; no_target when
      the value or the target is NULL. With a 0 denominator the status compares value and target
      directly (a cost of 0 against a positive target is on_track).
-#}

{%- set kpi_columns = kpi_metric_columns() %}

with

periods_measured as (

    select * from {{ ref('int_kpi_periods_measured') }}

),

kpi_definitions as (

    select
        kpi,
        higher_is_better,
        aggregation
    from {{ ref('kpi_definitions') }}

),

kpi_targets as (

    select
        month_start,
        kpi,
        target
    from {{ ref('stg_marketing__kpi_targets') }}

),

kpi_values as (

    -- one row per period and KPI: the KPI's column of the period
    select
        periods_measured.period_grain,
        periods_measured.period_start,
        periods_measured.period_end_date,
        periods_measured.elapsed_days,
        periods_measured.calendar_days,
        kpi_definitions.kpi,
        kpi_definitions.higher_is_better,
        kpi_definitions.aggregation,
        case kpi_definitions.kpi
            {%- for kpi in kpi_columns %}
            when '{{ kpi }}' then cast(periods_measured.{{ kpi }} as {{ contract_type('float') }})
            {%- endfor %}
        end as value
    from periods_measured
    cross join kpi_definitions

),

kpi_values_compared as (

    select
        kpi_values.*,
        lag(kpi_values.value) over (
            partition by kpi_values.period_grain, kpi_values.kpi
            order by kpi_values.period_start
        ) as previous_value
    from kpi_values

),

kpi_values_targeted as (

    select
        kpi_values_compared.*,
        case
            when kpi_values_compared.aggregation = 'sum'
                then
                    kpi_targets.target
                    * (
                        cast(kpi_values_compared.elapsed_days as {{ contract_type('float') }})
                        / kpi_values_compared.calendar_days
                    )
            else kpi_targets.target
        end as target
    from kpi_values_compared
    left join kpi_targets
        on
            kpi_values_compared.period_grain = 'month'
            and kpi_values_compared.period_start = kpi_targets.month_start
            and kpi_values_compared.kpi = kpi_targets.kpi

),

kpi_values_attained as (

    select
        kpi_values_targeted.*,
        case
            when kpi_values_targeted.value is null or kpi_values_targeted.target is null then null
            when kpi_values_targeted.higher_is_better
                then kpi_values_targeted.value / nullif(kpi_values_targeted.target, 0)
            else kpi_values_targeted.target / nullif(kpi_values_targeted.value, 0)
        end as target_attainment
    from kpi_values_targeted

),

final as (

    select
        period_grain,
        period_start,
        kpi,
        value,
        previous_value,
        (value - previous_value) / nullif(previous_value, 0) as change_pct,
        target,
        target_attainment,
        higher_is_better,
        case
            when value is null or target is null then 'no_target'
            when target_attainment is null
                then
                    case
                        when higher_is_better and value >= target then 'on_track'
                        when not higher_is_better and value <= target then 'on_track'
                        else 'off_track'
                    end
            when target_attainment >= 1 then 'on_track'
            when target_attainment >= 0.9 then 'at_risk'
            else 'off_track'
        end as status,
        period_end_date
    from kpi_values_attained

)

select * from final
