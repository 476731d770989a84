{#
    One row per customer created up to the as-of date, without PII: the email only as its
    sha256 key. Acquisition comes from int_customers_attributed, order history from
    int_customers_orders_summarised (recognized orders only), tickets from
    int_customers_tickets_counted.

    is_active: a recognized order in the 90 days ending on the as-of date (order_date between
    as-of - 89 days and as-of). is_churned: has a recognized order and is not active.
#}

with

customers as (

    select * from {{ ref('stg_sales__customers') }}

),

customers_attributed as (

    select * from {{ ref('int_customers_attributed') }}

),

customers_orders as (

    select * from {{ ref('int_customers_orders_summarised') }}

),

customers_tickets as (

    select * from {{ ref('int_customers_tickets_counted') }}

),

joined as (

    -- int_customers_attributed holds exactly the customers created up to the as-of date
    select
        customers.customer_id,
        {{ email_sha256("customers.email") }} as email_sha256,
        customers.country,
        customers.segment,
        customers.created_at,
        customers_attributed.signed_up_at,
        customers_attributed.acquisition_channel,
        customers_attributed.acquisition_campaign_id,
        customers_orders.first_order_at,
        customers_orders.cohort_month,
        customers_orders.last_order_at,
        customers_orders.last_order_date,
        coalesce(customers_orders.lifetime_orders, 0) as lifetime_orders,
        coalesce(customers_orders.lifetime_net_revenue, 0) as lifetime_net_revenue,
        coalesce(customers_orders.lifetime_gross_margin, 0) as lifetime_gross_margin,
        coalesce(customers_tickets.tickets_total, 0) as tickets_total
    from customers
    inner join customers_attributed
        on customers.customer_id = customers_attributed.customer_id
    left join customers_orders
        on customers.customer_id = customers_orders.customer_id
    left join customers_tickets
        on customers.customer_id = customers_tickets.customer_id

),

activity as (

    select
        *,
        coalesce(
            last_order_date >= cast({{ dbt.dateadd("day", -89, as_of_date()) }} as date),
            false
        ) as is_active
    from joined

),

final as (

    select
        customer_id,
        email_sha256,
        country,
        segment,
        created_at,
        signed_up_at,
        acquisition_channel,
        acquisition_campaign_id,
        first_order_at,
        cohort_month,
        last_order_at,
        cast(lifetime_orders as bigint) as lifetime_orders,
        cast(lifetime_net_revenue as numeric(18, 2)) as lifetime_net_revenue,
        cast(lifetime_gross_margin as numeric(18, 2)) as lifetime_gross_margin,
        cast(tickets_total as bigint) as tickets_total,
        is_active,
        lifetime_orders > 0 and not is_active as is_churned
    from activity

)

select * from final
