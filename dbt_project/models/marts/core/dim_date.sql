{#
    The business calendar: one row per day from the earliest date found in any source to the
    as-of date, in the business time zone. Weeks are ISO weeks (starting Monday). Every daily,
    weekly and monthly grain of the marts can be joined here.

    "Any source" is every dated business event the sources deliver: customers created, orders,
    refunds, signups, ad days, tickets, ticket events and time entries. Reference data does not
    start the calendar (fx rates may go back years before the first sale, campaigns are planned
    ahead), nor do updated_at and load times (bookkeeping); see docs/decisions.md.
#}

with

customers as (

    select * from {{ ref('stg_sales__customers') }}

),

orders as (

    select * from {{ ref('stg_sales__orders') }}

),

refunds as (

    select * from {{ ref('stg_sales__refunds') }}

),

signups as (

    select * from {{ ref('stg_marketing__signups') }}

),

ad_performance as (

    select * from {{ ref('stg_marketing__ad_performance') }}

),

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

ticket_events as (

    select * from {{ ref('stg_support__ticket_events') }}

),

time_entries as (

    select * from {{ ref('stg_support__time_entries') }}

),

{#- each dated source's first business date, from the rows within a day of its earliest instant
    only: an instant a day or more later cannot fall on an earlier business date (no time zone's
    offset falls by a whole day), and converting every row of the history was about a third of
    this model's time -#}
{%- set dated_events = [
    ("customers", "created_at"),
    ("orders", "ordered_at"),
    ("refunds", "refunded_at"),
    ("signups", "signed_up_at"),
    ("tickets", "created_at"),
    ("ticket_events", "created_at"),
    ("time_entries", "logged_at"),
] %}

first_dates as (

    {% for source_rows, event_time in dated_events %}
    {%- set first_instant = "(select min(" ~ event_time ~ ") from " ~ source_rows ~ ")" %}
    select min({{ to_business_date(event_time) }}) as first_date
    from {{ source_rows }}
    where {{ event_time }} < {{ dbt.dateadd("day", 1, first_instant) }}
    union all
    {% endfor %}
    select min(date_day) as first_date from ad_performance

),

calendar_bounds as (

    select
        min(first_date) as first_day,
        {{ as_of_date() }} as last_day
    from first_dates

),

calendar_days as (

    select cast(days.day_ts as date) as date_day
    from calendar_bounds
    cross join
        lateral {{ date_series("calendar_bounds.first_day", "calendar_bounds.last_day", "day") }}
            as days (day_ts)

),

final as (

    select
        date_day,
        cast({{ dbt.date_trunc("week", "cast(date_day as timestamp)") }} as date) as week_start,
        cast({{ dbt.date_trunc("month", "cast(date_day as timestamp)") }} as date) as month_start,
        cast(extract(quarter from date_day) as integer) as quarter,
        cast(extract(year from date_day) as integer) as year,
        {{ iso_day_of_week('date_day') }} in (6, 7) as is_weekend
    from calendar_days

)

select * from final
