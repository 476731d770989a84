{#-
    One row per ticket (created up to the as-of date) rated at least once up to the end of the
    as-of date (business zone): its latest satisfaction rating and when it was given. kpi_daily's
    csat counts each rated ticket once, with this score, on rated_date; a ticket rated bad and
    re-rated good later moves from the first day's csat to the second's.

    "Latest" is the last satisfaction_rated event by created_at, then event_id, as in
    int_ticket_events_summarised (fct_tickets.satisfaction): the two agree ticket by ticket
    (tests/assert_kpi_latest_ratings_match_fct_tickets.sql). Ratings of tickets the helpdesk does
    not list (orphans, quarantined upstream after a grace period) are left out, as in fct_tickets.
-#}
with

tickets as (

    select ticket_id
    from {{ ref('stg_support__tickets') }}
    where {{ to_business_date('created_at') }} <= {{ as_of_date() }}

),

ratings as (

    select
        event_id,
        ticket_id,
        created_at,
        score
    from {{ ref('stg_support__ticket_events') }}
    where
        event_type = 'satisfaction_rated'
        and score is not null
        and {{ to_business_date('created_at') }} <= {{ as_of_date() }}

),

ticket_rows as (

    -- Tickets and ratings stacked on ticket_id and matched with window functions rather than
    -- joined: PostgreSQL cannot estimate the rows of staging's latest-version filter and would
    -- scan every event once per ticket in a nested loop.
    select
        ticket_id,
        1 as is_ticket,
        cast(null as bigint) as event_id,
        cast(null as {{ contract_type('timestamp') }}) as created_at,
        cast(null as {{ contract_type('text') }}) as score
    from tickets

    union all

    select
        ticket_id,
        0 as is_ticket,
        event_id,
        created_at,
        score
    from ratings

),

ratings_ranked as (

    select
        ticket_id,
        is_ticket,
        event_id,
        created_at,
        score,
        max(is_ticket) over (partition by ticket_id) as is_known_ticket,
        row_number() over (
            partition by ticket_id, is_ticket
            order by created_at desc, event_id desc
        ) as recency_rank
    from ticket_rows

),

final as (

    select
        ticket_id,
        score as satisfaction,
        event_id as rating_event_id,
        created_at as rated_at,
        {{ to_business_date('created_at') }} as rated_date
    from ratings_ranked
    where
        is_ticket = 0
        and is_known_ticket = 1
        and recency_rank = 1

)

select * from final
