{#
    One row per (cohort_month, months_since_first_order) (docs/marts.md "retention_cohorts"): every
    cohort from its own month (0) to the as-of month, months without a single order included
    with zero retained customers and zero revenue.

    A customer's cohort is the month (business time zone) of their first recognized order, the
    order fct_orders flags is_first_order. A cohort customer is retained in a month when they
    have at least one recognized order in it, so month 0 is 100 % by construction. net_revenue
    sums the cohort's recognized orders of the month; each recognized order of fct_orders counts
    in exactly one cell, so Σ net_revenue here = Σ net_revenue of fct_orders.
#}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

recognized_orders as (

    select
        customer_id,
        is_first_order,
        net_revenue,
        cast({{ dbt.date_trunc("month", "cast(order_date as timestamp)") }} as date) as order_month
    from orders
    where is_recognized

),

cohort_members as (

    select
        customer_id,
        order_month as cohort_month
    from recognized_orders
    where is_first_order

),

cohorts as (

    select
        cohort_month,
        count(*) as cohort_size
    from cohort_members
    group by cohort_month

),

month_bounds as (

    select
        min(cohort_month) as first_month,
        cast({{ dbt.date_trunc("month", "cast(" ~ as_of_date() ~ " as timestamp)") }} as date)
            as as_of_month
    from cohorts

),

months as (

    select cast(month_series.month_ts as date) as month_start
    from month_bounds
    cross join
        lateral {{ date_series("month_bounds.first_month", "month_bounds.as_of_month", "month") }}
            as month_series (month_ts)

),

cohort_activity as (

    select
        cohort_members.cohort_month,
        recognized_orders.order_month as month_start,
        count(distinct recognized_orders.customer_id) as retained_customers,
        sum(recognized_orders.net_revenue) as net_revenue
    from recognized_orders
    inner join cohort_members
        on recognized_orders.customer_id = cohort_members.customer_id
    group by
        cohort_members.cohort_month,
        recognized_orders.order_month

),

cohort_grid as (

    -- every cohort in every month from its cohort month to the as-of month
    select
        cohorts.cohort_month,
        months.month_start,
        cast(
            {{ dbt.datediff("cohorts.cohort_month", "months.month_start", "month") }} as integer
        ) as months_since_first_order,
        cohorts.cohort_size,
        coalesce(cohort_activity.retained_customers, 0) as retained_customers,
        coalesce(cohort_activity.net_revenue, 0) as net_revenue
    from cohorts
    inner join months
        on cohorts.cohort_month <= months.month_start
    left join cohort_activity
        on
            cohorts.cohort_month = cohort_activity.cohort_month
            and months.month_start = cohort_activity.month_start

),

cumulated as (

    select
        *,
        sum(net_revenue) over (
            partition by cohort_month
            order by months_since_first_order
            rows between unbounded preceding and current row
        ) as cumulative_net_revenue
    from cohort_grid

),

final as (

    select
        cohort_month,
        months_since_first_order,
        month_start,
        cast(cohort_size as bigint) as cohort_size,
        cast(retained_customers as bigint) as retained_customers,
        -- doubles on both databases: IEEE division gives the same digits on DuckDB and PostgreSQL
        cast(retained_customers as {{ contract_type('float') }})
        / nullif(cast(cohort_size as {{ contract_type('float') }}), 0) as retention_rate,
        cast(net_revenue as numeric(18, 2)) as net_revenue,
        cast(cumulative_net_revenue as numeric(18, 2)) as cumulative_net_revenue,
        cast(cumulative_net_revenue as {{ contract_type('float') }})
        / nullif(cast(cohort_size as {{ contract_type('float') }}), 0)
            as cumulative_net_revenue_per_customer
    from cumulated

)

select * from final
