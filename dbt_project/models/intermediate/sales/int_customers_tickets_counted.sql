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

final as (

    select
        customers_to_date.customer_id,
        count(tickets_to_date.ticket_id) as tickets_total
    from customers_to_date
    left join tickets_to_date
        on customers_to_date.email_normalized = tickets_to_date.requester_email_normalized
    group by customers_to_date.customer_id

)

select * from final
