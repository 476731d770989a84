{#
    docs/marts.md's identities on every published order: net_revenue = gross_revenue -
    refund_amount, gross_margin = net_revenue - cogs, 0 <= refund_amount <= gross_revenue, cogs = 0
    for refunded orders, zero money for non-recognized orders, and is_first_order only on recognized
    orders, at most one per customer. Returns the orders that break one, with the broken rule.
#}

with

orders as (

    select * from {{ ref('fct_orders') }}

),

first_orders_per_customer as (

    select
        customer_id,
        count(*) as first_orders
    from orders
    where is_first_order
    group by customer_id

),

checks as (

    select
        orders.order_id,
        case
            when orders.net_revenue <> orders.gross_revenue - orders.refund_amount
                then 'net_revenue <> gross_revenue - refund_amount'
            when orders.gross_margin <> orders.net_revenue - orders.cogs
                then 'gross_margin <> net_revenue - cogs'
            when orders.refund_amount < 0 or orders.refund_amount > orders.gross_revenue
                then 'refund_amount outside [0, gross_revenue]'
            when orders.order_status = 'refunded' and orders.cogs <> 0
                then 'refunded order with cogs'
            when
                not orders.is_recognized
                and (
                    orders.gross_revenue <> 0 or orders.discount <> 0
                    or orders.refund_amount <> 0 or orders.cogs <> 0
                )
                then 'non-recognized order with money'
            when not orders.is_recognized and orders.is_first_order
                then 'non-recognized first order'
            when first_orders_per_customer.first_orders > 1 and orders.is_first_order
                then 'several first orders for one customer'
        end as broken_rule
    from orders
    left join first_orders_per_customer
        on orders.customer_id = first_orders_per_customer.customer_id

),

final as (

    select * from checks
    where broken_rule is not null

)

select * from final
