{#
    acquisition_month_ctes(): the CTEs channel_roi_monthly and campaign_performance_monthly
    share, each followed by a comma. The model defines the inputs first, as CTEs named
    ad_days (fct_ad_performance_daily), budgets (stg_marketing__budgets), customers
    (dim_customers) and orders (fct_orders), and the query must start `with recursive`.

    Activity at (business month, channel, campaign) grain, which each mart rolls up to its own:
    - ad_activity: spend, impressions and clicks of the ad facts;
    - signup_activity: customers who signed up in the month, by acquisition channel and campaign;
    - first_orders / new_customer_activity: customers whose first recognized order is in the
      month (a customer missing from dim_customers: channel `unattributed`, no campaign), with
      their recognized orders dated before first order date + 90 days.
    And the calendar both marts cover, month_days: every month from the first with any data (an
    ad day, a budget month up to the as-of month, a signup or a first order) to the as-of month,
    with days_in_month, elapsed_days (to the as-of date in the as-of month) and
    is_window_complete (month end + 90 days <= as-of date).
#}
{% macro acquisition_month_ctes() %}

as_of_months as (

    select
        {{ as_of_date() }} as as_of_date,
        cast({{ dbt.date_trunc("month", "cast(" ~ as_of_date() ~ " as timestamp)") }} as date)
            as as_of_month

),

ad_activity as (

    select
        cast({{ dbt.date_trunc("month", "cast(date_day as timestamp)") }} as date) as month_start,
        channel,
        campaign_id,
        sum(spend) as spend,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from ad_days
    group by 1, 2, 3

),

budget_months as (

    select budgets.month_start
    from budgets
    cross join as_of_months
    where budgets.month_start <= as_of_months.as_of_month

),

signup_activity as (

    select
        cast(
            {{ dbt.date_trunc("month", "cast(" ~ to_business_date("signed_up_at") ~ " as timestamp)") }}
            as date
        ) as month_start,
        acquisition_channel as channel,
        acquisition_campaign_id as campaign_id,
        count(*) as signups
    from customers
    where signed_up_at is not null
    group by 1, 2, 3

),

recognized_orders as (

    select
        customer_id,
        order_date,
        is_first_order,
        net_revenue,
        gross_margin
    from orders
    where is_recognized

),

first_orders as (

    select
        recognized_orders.customer_id,
        recognized_orders.order_date as first_order_date,
        cast(
            {{ dbt.date_trunc("month", "cast(recognized_orders.order_date as timestamp)") }}
            as date
        ) as month_start,
        coalesce(customers.acquisition_channel, 'unattributed') as channel,
        customers.acquisition_campaign_id as campaign_id
    from recognized_orders
    left join customers
        on recognized_orders.customer_id = customers.customer_id
    where recognized_orders.is_first_order

),

first_90d_values as (

    -- the first order is the customer's earliest, so every later order is on or after its date
    select
        first_orders.customer_id,
        sum(recognized_orders.net_revenue) as net_revenue_90d,
        sum(recognized_orders.gross_margin) as gross_margin_90d
    from first_orders
    inner join recognized_orders
        on
            first_orders.customer_id = recognized_orders.customer_id
            and recognized_orders.order_date
            < cast({{ dbt.dateadd("day", 90, "first_orders.first_order_date") }} as date)
    group by first_orders.customer_id

),

new_customer_activity as (

    select
        first_orders.month_start,
        first_orders.channel,
        first_orders.campaign_id,
        count(*) as new_customers,
        sum(first_90d_values.net_revenue_90d) as net_revenue_90d,
        sum(first_90d_values.gross_margin_90d) as gross_margin_90d
    from first_orders
    inner join first_90d_values
        on first_orders.customer_id = first_90d_values.customer_id
    group by 1, 2, 3

),

data_months as (

    select month_start from ad_activity
    union all
    select month_start from budget_months
    union all
    select month_start from signup_activity
    union all
    select month_start from new_customer_activity

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
    -- and the month x channel (or campaign) grid then costs enough to trigger JIT compilation
    -- (seconds, for a query that runs in milliseconds)
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
{% endmacro %}
