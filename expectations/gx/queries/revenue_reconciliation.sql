-- docs/quality.md: Σ net_revenue in kpi_daily = Σ net_revenue of fct_orders' recognized orders =
-- the same sum recomputed from staging, to the cent (one row; the differences must be 0).
--
-- The recomputation shares no code with the dbt models: each order's as-of rate is found by
-- sorting the order dates in among stg_sales__fx_rates' rate dates (the latest rate at or before
-- the order date), then docs/marts.md's definitions apply directly: recognized orders placed up to
-- the as-of date, gross = subtotal - discount, refunds made up to the as-of date converted at the
-- order date's rate and capped at gross, each order rounded to the cent. USD is 1 from the
-- sheet's first date; orders with no rate at or before their date count in neither sum.
-- Placeholders filled by the runner: {as_of_date}, {reporting_currency}, and the engine's spelling
-- of a timestamp's date in the business time zone ({business_date[column]}) and of a double.
with

recognized_orders as (

    select
        order_id,
        currency,
        subtotal - discount as gross_local,
        {business_date[ordered_at]} as order_date
    from staging.stg_sales__orders
    where order_status in ('paid', 'shipped', 'completed', 'refunded')

),

orders_to_date as (

    select * from recognized_orders
    where order_date <= cast('{as_of_date}' as date)

),

order_days as (

    -- the (currency, day) pairs whose rate is needed: far fewer than the orders
    select distinct
        currency,
        order_date as point_date
    from orders_to_date

    union

    select distinct
        '{reporting_currency}' as currency,
        order_date as point_date
    from orders_to_date

),

timeline as (

    select
        currency,
        rate_date as point_date,
        1 as is_rate,
        rate_to_usd
    from staging.stg_sales__fx_rates
    where currency <> 'USD'

    union all

    select
        'USD' as currency,
        min(rate_date) as point_date,
        1 as is_rate,
        cast(1.0 as {double}) as rate_to_usd
    from staging.stg_sales__fx_rates

    union all

    select
        currency,
        point_date,
        0 as is_rate,
        null as rate_to_usd
    from order_days

),

rate_dates_found as (

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

    select
        currency,
        point_date,
        is_rate,
        max(case when is_rate = 1 then rate_to_usd end) over (
            partition by currency, rate_date
        ) as found_rate_to_usd
    from rate_dates_found

),

day_rates as (

    select
        currency,
        point_date,
        found_rate_to_usd
    from rates_found
    where is_rate = 0 and found_rate_to_usd is not null

),

refunds_to_date as (

    select
        order_id,
        sum(amount) as refund_local
    from staging.stg_sales__refunds
    where {business_date[refunded_at]} <= cast('{as_of_date}' as date)
    group by order_id

),

orders_rated as (

    select
        orders_to_date.order_id,
        orders_to_date.gross_local,
        coalesce(refunds_to_date.refund_local, 0) as refund_local,
        cast(
            order_rate.found_rate_to_usd / reporting_rate.found_rate_to_usd as numeric(18, 10)
        ) as rate
    from orders_to_date
    inner join day_rates as order_rate
        on
            orders_to_date.currency = order_rate.currency
            and orders_to_date.order_date = order_rate.point_date
    inner join day_rates as reporting_rate
        on
            reporting_rate.currency = '{reporting_currency}'
            and orders_to_date.order_date = reporting_rate.point_date
    left join refunds_to_date
        on orders_to_date.order_id = refunds_to_date.order_id

),

orders_converted as (

    select
        round(cast(gross_local as numeric(38, 2)) * rate, 2) as gross_revenue,
        round(cast(refund_local as numeric(38, 2)) * rate, 2) as refunds
    from orders_rated

),

staging_sum as (

    select coalesce(sum(gross_revenue - least(refunds, gross_revenue)), 0) as net_revenue
    from orders_converted

),

fct_orders_sum as (

    select coalesce(sum(net_revenue), 0) as net_revenue
    from marts.fct_orders
    where is_recognized

),

kpi_daily_sum as (

    select coalesce(sum(net_revenue), 0) as net_revenue
    from marts.kpi_daily

)

select
    kpi_daily_sum.net_revenue as kpi_daily_net_revenue,
    fct_orders_sum.net_revenue as fct_orders_net_revenue,
    staging_sum.net_revenue as staging_net_revenue,
    kpi_daily_sum.net_revenue - fct_orders_sum.net_revenue as kpi_daily_minus_fct_orders,
    fct_orders_sum.net_revenue - staging_sum.net_revenue as fct_orders_minus_staging
from kpi_daily_sum
cross join fct_orders_sum
cross join staging_sum
