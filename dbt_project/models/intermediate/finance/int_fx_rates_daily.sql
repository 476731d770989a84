{#
    The as-of fx rate of every currency on every calendar day, from the first published rate to
    the as-of date: the rate published on the day, else the most recent earlier one (the sheet has
    no weekend rates). Every money conversion of the marts joins this model on (date_day, currency):
    amount in `currency` x rate_to_reporting = amount in var('reporting_currency').

    USD is the base of the sheet (rate_to_usd = USD per unit), so it is 1 on every day whether or
    not the sheet lists it. A (day, currency) pair with no rate at or before the day, or a day on
    which the reporting currency has none, has no row: amounts on it are left out, never guessed.
#}

with

fx_rates as (

    select * from {{ ref('stg_sales__fx_rates') }}

),

published_rates as (

    -- USD is the base of the sheet; its rows (1.0) are replaced by the constant below
    select
        rate_date,
        currency,
        rate_to_usd
    from fx_rates
    where
        currency <> 'USD'
        and rate_date <= {{ as_of_date() }}

),

rate_validity as (

    -- each rate is in force from its own date until the currency's next published rate
    select
        currency,
        rate_date,
        rate_to_usd,
        lead(rate_date) over (
            partition by currency
            order by rate_date
        ) as next_rate_date
    from published_rates

),

calendar_bounds as (

    select
        min(rate_date) as first_day,
        {{ as_of_date() }} as last_day
    from fx_rates
    where rate_date <= {{ as_of_date() }}

),

calendar_days as (

    select cast(days.day_ts as date) as date_day
    from calendar_bounds
    cross join
        lateral {{ date_series("calendar_bounds.first_day", "calendar_bounds.last_day", "day") }}
            as days (day_ts)

),

published_rates_in_force as (

    select
        calendar_days.date_day,
        rate_validity.currency,
        rate_validity.rate_date,
        rate_validity.rate_to_usd
    from calendar_days
    inner join rate_validity
        on
            calendar_days.date_day >= rate_validity.rate_date
            and (
                rate_validity.next_rate_date is null
                or calendar_days.date_day < rate_validity.next_rate_date
            )

),

usd_rates as (

    -- 1 USD = 1 USD on every day of the sheet
    select
        date_day,
        'USD' as currency,
        date_day as rate_date,
        cast(1.0 as {{ contract_type('float') }}) as rate_to_usd
    from calendar_days

),

rates_in_force as (

    select * from published_rates_in_force
    union all
    select * from usd_rates

),

reporting_rates as (

    select
        date_day,
        rate_to_usd as reporting_rate_to_usd
    from rates_in_force
    where currency = {{ reporting_currency_literal() }}

),

final as (

    select
        rates_in_force.date_day,
        rates_in_force.currency,
        rates_in_force.rate_date,
        rates_in_force.rate_to_usd,
        -- 10 decimals: exact for the sheet's 6-decimal rates, and the same digits on DuckDB and
        -- PostgreSQL (which converts a double to numeric through 15 significant digits)
        cast(
            rates_in_force.rate_to_usd / reporting_rates.reporting_rate_to_usd
            as numeric(18, 10)
        ) as rate_to_reporting,
        -- the same for USD, so that amounts kept in USD (product costs) convert in the same join
        cast(1.0 / reporting_rates.reporting_rate_to_usd as numeric(18, 10))
            as usd_rate_to_reporting,
        cast(
            {{ dbt.datediff("rates_in_force.rate_date", "rates_in_force.date_day", "day") }}
            as bigint
        ) as rate_age_days
    from rates_in_force
    inner join reporting_rates
        on rates_in_force.date_day = reporting_rates.date_day

)

select * from final
