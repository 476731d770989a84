{#
    One row per (business month, acquisition channel, acquisition campaign) with new customers:
    customers whose first recognized order (fct_orders.is_first_order) is in the month, by the
    acquisition_channel and acquisition_campaign_id of dim_customers (a customer missing from
    dim_customers: channel `unattributed`, no campaign), with the value of their first 90 days:
    Σ net_revenue and gross_margin of their recognized orders dated before first order date + 90
    days (as far as placed by the as-of date; fct_orders holds nothing later). The cost-benefit
    marts roll it up to their own grain.
#}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

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

new_customer_months as (

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
    group by first_orders.month_start, first_orders.channel, first_orders.campaign_id

),

final as (

    select
        month_start,
        channel,
        campaign_id,
        cast(new_customers as bigint) as new_customers,
        cast(net_revenue_90d as numeric(18, 2)) as net_revenue_90d,
        cast(gross_margin_90d as numeric(18, 2)) as gross_margin_90d
    from new_customer_months

)

select * from final
