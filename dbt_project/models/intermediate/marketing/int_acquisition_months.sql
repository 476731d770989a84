{#
    One row per month of the cost-benefit marts' calendar (channel_roi_monthly,
    campaign_performance_monthly): every month from the first with any data (an ad day, a budget
    month up to the as-of month, a signup or a first order) to the as-of month, with
    days_in_month, elapsed_days (to the as-of date in the as-of month) and is_window_complete
    (month end + 90 days <= as-of date). No rows when there is no data at all.
#}

with recursive

ad_months as (

    select * from {{ ref('int_ad_performance_monthly') }}

),

budgets as (

    select * from {{ ref('stg_marketing__budgets') }}

),

signup_months as (

    select * from {{ ref('int_signups_monthly') }}

),

new_customer_months as (

    select * from {{ ref('int_new_customers_monthly') }}

),

as_of_months as (

    select
        {{ as_of_date() }} as as_of_date,
        cast({{ dbt.date_trunc("month", "cast(" ~ as_of_date() ~ " as timestamp)") }} as date)
            as as_of_month

),

budget_months as (

    select budgets.month_start
    from budgets
    cross join as_of_months
    where budgets.month_start <= as_of_months.as_of_month

),

data_months as (

    select month_start from ad_months
    union all
    select month_start from budget_months
    union all
    select month_start from signup_months
    union all
    select month_start from new_customer_months

),

month_bounds as (

    select
        min(data_months.month_start) as first_month,
        max(as_of_months.as_of_month) as as_of_month
    from data_months
    cross join as_of_months

),

months (month_start) as (

    -- recursive rather than generate_series(): PostgreSQL plans a function scan as 1000 rows,
    -- and the month x channel (or campaign) grid of the marts then costs enough to trigger JIT
    -- compilation (seconds, for a query that runs in milliseconds)
    select first_month as month_start
    from month_bounds
    where first_month is not null

    union all

    select cast({{ dbt.dateadd("month", 1, "months.month_start") }} as date) as month_start
    from months
    inner join month_bounds
        on months.month_start < month_bounds.as_of_month

),

month_periods as (

    select
        months.month_start,
        cast({{ dbt.dateadd("day", -1, dbt.dateadd("month", 1, "months.month_start")) }} as date)
            as month_end_date,
        as_of_months.as_of_date,
        months.month_start = as_of_months.as_of_month as is_as_of_month
    from months
    cross join as_of_months

),

month_days as (

    select
        *,
        cast({{ dbt.datediff("month_start", "month_end_date", "day") }} as bigint) + 1
            as days_in_month,
        case
            when is_as_of_month
                then cast({{ dbt.datediff("month_start", "as_of_date", "day") }} as bigint) + 1
            else cast({{ dbt.datediff("month_start", "month_end_date", "day") }} as bigint) + 1
        end as elapsed_days,
        cast({{ dbt.dateadd("day", 90, "month_end_date") }} as date) <= as_of_date
            as is_window_complete
    from month_periods

),

final as (

    select
        month_start,
        month_end_date,
        as_of_date,
        is_as_of_month,
        days_in_month,
        elapsed_days,
        is_window_complete
    from month_days

)

select * from final
