{#
    One row per customer created up to the as-of date: how many helpdesk tickets they opened up
    to the as-of date. The helpdesk knows requesters by email only, so a ticket belongs to every
    customer whose email matches the requester's, ignoring case and surrounding spaces.
    Computed from staging so that dim_customers does not wait for fct_tickets.
#}

with

customers as (

    select * from {{ ref('stg_sales__customers') }}

),

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

customers_to_date as (

    select
        customer_id,
        email_normalized
    from customers
    where {{ to_business_date("created_at") }} <= {{ as_of_date() }}

),

tickets_to_date as (

    select
        ticket_id,
        requester_email_normalized
    from tickets
    where {{ to_business_date("created_at") }} <= {{ as_of_date() }}

),

email_rows as (

    -- Customers and tickets stacked on the normalized email and counted with a window rather
    -- than joined: PostgreSQL cannot estimate the rows of staging's latest-version filter and
    -- would pair every customer with every ticket in a nested loop.
    select
        customer_id,
        email_normalized,
        0 as is_ticket
    from customers_to_date

    union all

    select
        null as customer_id,
        requester_email_normalized as email_normalized,
        1 as is_ticket
    from tickets_to_date
    where requester_email_normalized is not null

),

emails_counted as (

    select
        customer_id,
        email_normalized,
        is_ticket,
        sum(is_ticket) over (partition by email_normalized) as tickets_with_email
    from email_rows

),

final as (

    select
        customer_id,
        cast(
            case when email_normalized is null then 0 else tickets_with_email end as bigint
        ) as tickets_total
    from emails_counted
    where is_ticket = 0

)

select * from final
