{#
    quality.md reconciliation: Σ net_revenue in fct_orders equals the same sum recomputed from
    staging, to the cent. The recomputation shares no code with int_fx_rates_daily or
    int_orders_converted: it finds each order's as-of rate by sorting the order dates in among
    the published rate dates of stg_sales__fx_rates (the latest rate date at or before the order
    date) instead of a calendar, and applies marts.md's definitions directly: recognized orders
    placed up to the as-of date, gross = subtotal - discount, refunds made up to the as-of date
    converted at the order date's rate and capped at gross, each order rounded to the cent (the
    published rounding). USD is 1 from the sheet's first date. Orders without a rate at or before
    their date count in neither sum. Fails with one row showing both sums when they differ.
#}

{%- set reporting_currency = var("reporting_currency") %}

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

timeline as (

    -- Published rates and the rates each order needs (its own currency's and the reporting
    -- currency's), on one time line per currency. USD is the sheet's base: a rate of 1 on the
    -- sheet's first date covers every later day.
    select
        cast(null as text) as order_id,
        cast(null as text) as rate_role,
        currency,
        rate_date as point_date,
        1 as is_rate,
        rate_to_usd
    from fx_rates
    where currency <> 'USD'

    union all

    select
        null as order_id,
        null as rate_role,
        'USD' as currency,
        min(rate_date) as point_date,
        1 as is_rate,
        cast(1.0 as double precision) as rate_to_usd
    from fx_rates

    union all

    select
        order_id,
        'order' as rate_role,
        currency,
        order_date as point_date,
        0 as is_rate,
        null as rate_to_usd
    from orders_to_date

    union all

    select
        order_id,
        'reporting' as rate_role,
        '{{ reporting_currency }}' as currency,
        order_date as point_date,
        0 as is_rate,
        null as rate_to_usd
    from orders_to_date

),

rate_dates_found as (

    -- the latest rate date at or before each point (a rate of the order's own date sorts first)
    select
        *,
        max(case when is_rate = 1 then point_date end) over (
            partition by currency
            order by point_date, is_rate desc
            rows between unbounded preceding and current row
        ) as rate_date
    from timeline

),

rates_found as (

    -- the rate published on that date: the one rate row of its (currency, rate_date) group
    select
        order_id,
        rate_role,
        is_rate,
        max(case when is_rate = 1 then rate_to_usd end) over (
            partition by currency, rate_date
        ) as found_rate_to_usd
    from rate_dates_found

),

order_facts as (

    -- gross, refunds and both rates stacked on order_id and summed once (no joins: PostgreSQL
    -- misestimates staging's row counts and would nest loops over them)
    select
        order_id,
        gross_local,
        cast(0 as numeric(18, 2)) as refund_local,
        cast(null as double precision) as order_rate_to_usd,
        cast(null as double precision) as reporting_rate_to_usd,
        1 as is_order
    from orders_to_date

    union all

    select
        order_id,
        0 as gross_local,
        amount as refund_local,
        null as order_rate_to_usd,
        null as reporting_rate_to_usd,
        0 as is_order
    from refunds
    where {{ to_business_date("refunded_at") }} <= {{ as_of_date() }}

    union all

    select
        order_id,
        0 as gross_local,
        0 as refund_local,
        case when rate_role = 'order' then found_rate_to_usd end as order_rate_to_usd,
        case when rate_role = 'reporting' then found_rate_to_usd end as reporting_rate_to_usd,
        0 as is_order
    from rates_found
    where is_rate = 0

),

orders_rated as (

    select
        order_id,
        sum(gross_local) as gross_local,
        sum(refund_local) as refund_local,
        cast(
            max(order_rate_to_usd) / max(reporting_rate_to_usd) as numeric(18, 10)
        ) as rate
    from order_facts
    group by order_id
    having
        max(is_order) = 1
        and max(order_rate_to_usd) is not null
        and max(reporting_rate_to_usd) is not null

),

orders_converted as (

    select
        order_id,
        round(cast(gross_local as numeric(38, 2)) * rate, 2) as gross_revenue,
        round(cast(refund_local as numeric(38, 2)) * rate, 2) as refunds
    from orders_rated

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
