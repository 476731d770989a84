{#
    quality.md reconciliation: Σ net_revenue in fct_orders equals the same sum recomputed from
    staging, to the cent. The recomputation is independent of int_fx_rates_daily and
    int_orders_converted: it looks up the as-of rate of each order's currency (and of the
    reporting currency) directly in stg_sales__fx_rates with a correlated subquery, and applies
    marts.md's definitions: recognized orders placed up to the as-of date, gross = subtotal -
    discount, refunds made up to the as-of date converted at the order date's rate and capped at
    gross, each order rounded to the cent (the published rounding). Orders without a rate at or
    before their date count in neither sum. Fails with one row showing both sums when they differ.
#}

with

orders as (

    select * from {{ ref('stg_sales__orders') }}

),

refunds as (

    select * from {{ ref('stg_sales__refunds') }}

),

fx_rates as (

    select * from {{ ref('stg_sales__fx_rates') }}

),

published_orders as (

    select * from {{ ref('fct_orders') }}

),

recognized_orders as (

    select
        order_id,
        currency,
        subtotal - discount as gross_local,
        {{ to_business_date("ordered_at") }} as order_date
    from orders
    where order_status in ('paid', 'shipped', 'completed', 'refunded')

),

orders_to_date as (

    select * from recognized_orders
    where order_date <= {{ as_of_date() }}

),

order_refunds as (

    select
        order_id,
        sum(amount) as refund_local
    from refunds
    where {{ to_business_date("refunded_at") }} <= {{ as_of_date() }}
    group by order_id

),

orders_rated as (

    -- USD is the base currency: 1 on every day from the sheet's first rate
    select
        orders_to_date.order_id,
        orders_to_date.gross_local,
        coalesce(order_refunds.refund_local, 0) as refund_local,
        case
            when orders_to_date.currency = 'USD'
                then (
                    select 1.0 from fx_rates
                    where fx_rates.rate_date <= orders_to_date.order_date
                    limit 1
                )
            else (
                select fx_rates.rate_to_usd from fx_rates
                where
                    fx_rates.currency = orders_to_date.currency
                    and fx_rates.rate_date <= orders_to_date.order_date
                order by fx_rates.rate_date desc
                limit 1
            )
        end as order_rate_to_usd,
        {% if var("reporting_currency") == "USD" -%}
        (
            select 1.0 from fx_rates
            where fx_rates.rate_date <= orders_to_date.order_date
            limit 1
        ) as reporting_rate_to_usd
        {%- else -%}
        (
            select fx_rates.rate_to_usd from fx_rates
            where
                fx_rates.currency = '{{ var("reporting_currency") }}'
                and fx_rates.rate_date <= orders_to_date.order_date
            order by fx_rates.rate_date desc
            limit 1
        ) as reporting_rate_to_usd
        {%- endif %}
    from orders_to_date
    left join order_refunds
        on orders_to_date.order_id = order_refunds.order_id

),

orders_converted as (

    select
        order_id,
        round(cast(gross_local as numeric(38, 2)) * rate, 2) as gross_revenue,
        round(cast(refund_local as numeric(38, 2)) * rate, 2) as refunds
    from (
        select
            order_id,
            gross_local,
            refund_local,
            cast(
                cast(order_rate_to_usd as double precision)
                / cast(reporting_rate_to_usd as double precision)
                as numeric(18, 10)
            ) as rate
        from orders_rated
        where
            order_rate_to_usd is not null
            and reporting_rate_to_usd is not null
    ) as rated

),

recomputed as (

    select sum(gross_revenue - least(refunds, gross_revenue)) as net_revenue
    from orders_converted

),

published as (

    select sum(net_revenue) as net_revenue
    from published_orders

),

final as (

    select
        published.net_revenue as published_net_revenue,
        recomputed.net_revenue as recomputed_net_revenue
    from published
    cross join recomputed
    where abs(coalesce(published.net_revenue, 0) - coalesce(recomputed.net_revenue, 0)) >= 0.01

)

select * from final
