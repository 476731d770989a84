{#
    docs/quality.md reconciliation: Σ net_revenue in kpi_daily = Σ net_revenue of the recognized
    orders in fct_orders = the same sum recomputed from staging (orders, refunds, fx rates), to the
    cent.

    The staging recomputation shares no code with int_fx_rates_daily or int_orders_converted: each
    currency's published rates become validity periods (from a rate's date until the currency's
    next rate; USD is 1 from the sheet's first date), expanded to days, and each recognized order
    placed up to the as-of date takes the rate in force on its order date, for its own currency
    and for the reporting currency. Then docs/marts.md directly: gross = subtotal - discount,
    refunds made up to the as-of date at the order date's rate and capped at gross, each order
    rounded to the cent (the published rounding, docs/decisions.md). Orders without a rate at or
    before their date count in none of the sums. Fails with one row showing the three sums when any
    two differ.
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

kpi_daily as (

    select * from {{ ref('kpi_daily') }}

),

fct_orders as (

    select * from {{ ref('fct_orders') }}

),

rate_points as (

    select
        currency,
        rate_date,
        rate_to_usd
    from fx_rates
    where
        currency <> 'USD'
        and rate_date <= {{ as_of_date() }}

    union all

    -- USD is the sheet's base: 1 from the sheet's first date
    select
        'USD' as currency,
        min(rate_date) as rate_date,
        cast(1.0 as {{ contract_type('float') }}) as rate_to_usd
    from fx_rates
    where rate_date <= {{ as_of_date() }}

),

rate_periods as (

    -- each rate is in force from its date until the day before the currency's next rate, the
    -- last one until the as-of date
    select
        currency,
        rate_date as valid_from,
        lead(rate_date) over (partition by currency order by rate_date) as next_rate_date,
        rate_to_usd
    from rate_points

),

rates_in_force as (

    -- one row per currency and day, joined on equality below (a range join of every order with
    -- every rate period turns into a slow nested loop on PostgreSQL)
    select
        rate_periods.currency,
        cast(days.day_ts as date) as rate_day,
        rate_periods.rate_to_usd
    from rate_periods
    cross join
        lateral {{ date_series(
            "rate_periods.valid_from",
            "coalesce(cast(" ~ dbt.dateadd('day', -1, 'rate_periods.next_rate_date')
            ~ " as timestamp), cast(" ~ as_of_date() ~ " as timestamp))",
            "day"
        ) }}
            as days (day_ts)

),

recognized_orders as (

    select
        order_id,
        currency,
        subtotal - discount as gross_local,
        {{ to_business_date('ordered_at') }} as order_date
    from orders
    where
        order_status in ('paid', 'shipped', 'completed', 'refunded')
        and {{ to_business_date('ordered_at') }} <= {{ as_of_date() }}

),

orders_rated as (

    select
        recognized_orders.order_id,
        recognized_orders.gross_local,
        cast(
            order_rates.rate_to_usd / reporting_rates.rate_to_usd as numeric(18, 10)
        ) as rate_to_reporting
    from recognized_orders
    inner join rates_in_force as order_rates
        on
            recognized_orders.currency = order_rates.currency
            and recognized_orders.order_date = order_rates.rate_day
    inner join rates_in_force as reporting_rates
        on
            reporting_rates.currency = {{ reporting_currency_literal() }}
            and recognized_orders.order_date = reporting_rates.rate_day

),

refunds_to_date as (

    select
        order_id,
        sum(amount) as refund_local
    from refunds
    where {{ to_business_date('refunded_at') }} <= {{ as_of_date() }}
    group by order_id

),

orders_converted as (

    select
        round(
            cast(orders_rated.gross_local as numeric(38, 2)) * orders_rated.rate_to_reporting, 2
        ) as gross_revenue,
        round(
            cast(coalesce(refunds_to_date.refund_local, 0) as numeric(38, 2))
            * orders_rated.rate_to_reporting,
            2
        ) as refunds
    from orders_rated
    left join refunds_to_date
        on orders_rated.order_id = refunds_to_date.order_id

),

kpi_daily_sum as (

    select coalesce(sum(net_revenue), 0) as kpi_daily_net_revenue
    from kpi_daily

),

fct_orders_sum as (

    select coalesce(sum(net_revenue), 0) as fct_orders_net_revenue
    from fct_orders
    where is_recognized

),

staging_sum as (

    select coalesce(sum(gross_revenue - least(refunds, gross_revenue)), 0) as staging_net_revenue
    from orders_converted

),

sums as (

    select
        kpi_daily_sum.kpi_daily_net_revenue,
        fct_orders_sum.fct_orders_net_revenue,
        staging_sum.staging_net_revenue
    from kpi_daily_sum
    cross join fct_orders_sum
    cross join staging_sum

),

final as (

    select * from sums
    where
        abs(kpi_daily_net_revenue - fct_orders_net_revenue) >= 0.01
        or abs(kpi_daily_net_revenue - staging_net_revenue) >= 0.01
        or abs(fct_orders_net_revenue - staging_net_revenue) >= 0.01

)

select * from final
