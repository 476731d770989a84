{#
    int_tickets_latest_rating (csat's source, computed from the ticket events) and fct_tickets
    (satisfaction, satisfaction_rated_at) name the same latest rating for every ticket, so that
    Σ csat_ratings over all days = the rated tickets of fct_tickets. Returns each ticket on which
    they disagree.
#}

with

latest_ratings as (

    select * from {{ ref('int_tickets_latest_rating') }}

),

rated_tickets as (

    select
        ticket_id,
        satisfaction,
        satisfaction_rated_at
    from {{ ref('fct_tickets') }}
    where satisfaction is not null

),

final as (

    select
        coalesce(latest_ratings.ticket_id, rated_tickets.ticket_id) as ticket_id,
        latest_ratings.satisfaction as kpi_satisfaction,
        rated_tickets.satisfaction as fct_tickets_satisfaction,
        latest_ratings.rated_at as kpi_rated_at,
        rated_tickets.satisfaction_rated_at as fct_tickets_rated_at
    from latest_ratings
    full outer join rated_tickets
        on latest_ratings.ticket_id = rated_tickets.ticket_id
    where
        latest_ratings.ticket_id is null
        or rated_tickets.ticket_id is null
        or latest_ratings.satisfaction <> rated_tickets.satisfaction
        or latest_ratings.rated_at <> rated_tickets.satisfaction_rated_at

)

select * from final
