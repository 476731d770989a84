{#
    One row per business month from the month of the first recognized order to the as-of month
    (docs/marts.md "churn_monthly"). A customer is active on a day when they have a recognized order
    (fct_orders) in the 90 days ending that day: order_date in [day - 89, day].

    - active_at_start: active on the day before month_start;
    - active_at_end: active on the period's end day, the month's last day (the as-of date for the
      as-of month);
    - new_customers: first recognized order (is_first_order) in the month;
    - churned: active at start, not active at end;
    - reactivated: not active at start, not new, active at end.

    The identity active_at_end = active_at_start - churned + new_customers + reactivated holds by
    construction. Split the customers active at end by whether they were active at start:
    those who were number active_at_start - churned (churned are exactly the active-at-start
    customers who are not active at end); those who were not are either new or reactivated,
    because a new customer is always active at end (their first order lies in the month, within
    the 90 days ending on its end day: a month is shorter than 90 days) and never active at
    start (no order before the month). A customer active at start who lapses during the month
    and orders again before its end is active at both ends: neither churned nor reactivated,
    and counted on both sides of the identity. tests/assert_churn_identity_holds.sql checks it.
#}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

recognized_orders as (

    select
        customer_id,
        order_date,
        is_first_order
    from orders
    where is_recognized

),

month_bounds as (

    select
        cast({{ dbt.date_trunc("month", "cast(min(order_date) as timestamp)") }} as date)
            as first_month,
        cast({{ dbt.date_trunc("month", "cast(" ~ as_of_date() ~ " as timestamp)") }} as date)
            as as_of_month
    from recognized_orders

),

months as (

    select
        cast(month_series.month_ts as date) as month_start,
        month_bounds.as_of_month
    from month_bounds
    cross join
        lateral {{ date_series("month_bounds.first_month", "month_bounds.as_of_month", "month") }}
            as month_series (month_ts)

),

month_periods as (

    -- the two days activity is measured on, and the first day of each one's 90-day window
    select
        month_start,
        cast({{ dbt.dateadd("day", -1, "month_start") }} as date) as start_day,
        cast({{ dbt.dateadd("day", -90, "month_start") }} as date) as start_window_first_day,
        case
            when month_start = as_of_month then {{ as_of_date() }}
            else cast({{ dbt.dateadd("day", -1, dbt.dateadd("month", 1, "month_start")) }} as date)
        end as period_end_date
    from months

),

month_windows as (

    select
        *,
        cast({{ dbt.dateadd("day", -89, "period_end_date") }} as date) as end_window_first_day
    from month_periods

),

customer_months as (

    -- every customer with a recognized order in either window of the month (or in between)
    select
        month_windows.month_start,
        recognized_orders.customer_id,
        max(
            case
                when recognized_orders.order_date <= month_windows.start_day then 1
                else 0
            end
        ) as was_active_at_start,
        max(
            case
                when recognized_orders.order_date >= month_windows.end_window_first_day then 1
                else 0
            end
        ) as is_active_at_end,
        max(
            case
                when
                    recognized_orders.is_first_order
                    and recognized_orders.order_date >= month_windows.month_start
                    then 1
                else 0
            end
        ) as is_new
    from month_windows
    inner join recognized_orders
        on
            month_windows.start_window_first_day <= recognized_orders.order_date
            and month_windows.period_end_date >= recognized_orders.order_date
    group by
        month_windows.month_start,
        recognized_orders.customer_id

),

customer_transitions as (

    select
        month_start,
        was_active_at_start,
        is_active_at_end,
        is_new,
        case when was_active_at_start = 1 and is_active_at_end = 0 then 1 else 0 end as is_churned,
        case
            when was_active_at_start = 0 and is_new = 0 and is_active_at_end = 1 then 1
            else 0
        end as is_reactivated
    from customer_months

),

monthly_counts as (

    select
        month_start,
        sum(was_active_at_start) as active_at_start,
        sum(is_new) as new_customers,
        sum(is_reactivated) as reactivated,
        sum(is_churned) as churned,
        sum(is_active_at_end) as active_at_end
    from customer_transitions
    group by month_start

),

final as (

    select
        month_windows.month_start,
        month_windows.period_end_date,
        cast(coalesce(monthly_counts.active_at_start, 0) as bigint) as active_at_start,
        cast(coalesce(monthly_counts.new_customers, 0) as bigint) as new_customers,
        cast(coalesce(monthly_counts.reactivated, 0) as bigint) as reactivated,
        cast(coalesce(monthly_counts.churned, 0) as bigint) as churned,
        cast(coalesce(monthly_counts.active_at_end, 0) as bigint) as active_at_end,
        cast(monthly_counts.churned as {{ contract_type('float') }})
        / nullif(cast(monthly_counts.active_at_start as {{ contract_type('float') }}), 0)
            as churn_rate
    from month_windows
    left join monthly_counts
        on month_windows.month_start = monthly_counts.month_start

)

select * from final
