{#
    One row per customer with at least one recognized order up to the as-of date: the first
    recognized order (earliest ordered_at, ties broken by the lowest order_id), the customer's
    cohort and lifetime totals. Only recognized orders count (paid, shipped, completed, refunded):
    a customer whose orders were all cancelled or are still pending has no row.
#}

with

orders as (

    select * from {{ ref('int_orders_converted') }}

),

recognized_orders as (

    select * from orders
    where
        is_recognized
        and customer_id is not null

),

lifetime_totals as (

    select
        customer_id,
        count(*) as lifetime_orders,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        max(order_date) as last_order_date,
        sum(net_revenue) as lifetime_net_revenue,
        sum(gross_margin) as lifetime_gross_margin
    from recognized_orders
    group by customer_id

),

first_orders as (

    -- the order placed at the customer's first ordered_at, the lowest order_id among ties: a
    -- join and an aggregate rather than a row_number() over every order (half the model's time)
    select
        recognized_orders.customer_id,
        min(recognized_orders.order_id) as first_order_id,
        min(recognized_orders.order_date) as first_order_date
    from recognized_orders
    inner join lifetime_totals
        on
            recognized_orders.customer_id = lifetime_totals.customer_id
            and recognized_orders.ordered_at = lifetime_totals.first_order_at
    group by recognized_orders.customer_id

),

final as (

    select
        first_orders.customer_id,
        first_orders.first_order_id,
        lifetime_totals.first_order_at,
        first_orders.first_order_date,
        cast(
            {{ dbt.date_trunc("month", "cast(first_orders.first_order_date as timestamp)") }}
            as date
        ) as cohort_month,
        lifetime_totals.last_order_at,
        lifetime_totals.last_order_date,
        lifetime_totals.lifetime_orders,
        cast(lifetime_totals.lifetime_net_revenue as numeric(18, 2)) as lifetime_net_revenue,
        cast(lifetime_totals.lifetime_gross_margin as numeric(18, 2)) as lifetime_gross_margin
    from first_orders
    inner join lifetime_totals
        on first_orders.customer_id = lifetime_totals.customer_id

)

select * from final
