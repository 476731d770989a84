{#-
    One row per stretch of business days that a ticket created up to the as-of date ends in one
    status: valid_from, the first such day, and valid_until, the first day it no longer does
    (null: it still does on the as-of date). A ticket's status at the end of a day is its latest
    status change up to then (business zone); before its first change it is `new`.
    int_tickets_status_daily adds these stretches up into each day's counts.

    Incremental (delete+insert on ticket_id; a ticket's stretches are replaced together): an
    incremental day recomputes, from all their events, the tickets whose ticket row or any event
    was loaded since the last build (the newest _inputs_loaded_at kept here), tickets created and
    events made after the last build's as-of date, tickets of staging not kept here, and every
    ticket when the as-of date moved back: the rule of int_ticket_events_summarised
    (macros/incremental_staging.sql changed_tickets; docs/decisions.md "The incremental day").
    The post-hook removes the tickets that no longer qualify. A full refresh and the chains of
    incremental runs tested (tests/dbt/test_incremental_equivalence.py) give the same rows. Not
    caught until the weekly full build, as in int_ticket_events_summarised: an event that
    vanishes from staging, or whose newest version names another ticket, leaves the old
    ticket's stretches as they were.
-#}

{{
    config(
        materialized=incremental_materialization(),
        unique_key="ticket_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks(["{{ tickets_not_created_by_as_of() }}"]),
    )
}}

with

{% if is_incremental() %}

last_build as (

    {{ last_build() }}

),

changed_tickets as (

    {{ changed_tickets() }}

),

{% endif %}

-- the newest load among the inputs this build read: the next build's watermark
inputs_loaded as (

    {{ newest_load_of([
        ref('stg_support__tickets'),
        ref('stg_support__ticket_events'),
    ]) }}

),

tickets as (

    select
        ticket_id,
        created_at
    from {{ ref('stg_support__tickets') }}
    where
        {{ to_business_date('created_at') }} <= {{ as_of_date() }}
        {% if is_incremental() %}
        and ticket_id in (select changed_tickets.ticket_id from changed_tickets)
        {% endif %}

),

status_changes as (

    select
        ticket_id,
        event_id,
        created_at,
        new_status
    from {{ ref('stg_support__ticket_events') }}
    where
        event_type = 'status_change'
        and new_status is not null
        and {{ to_business_date('created_at') }} <= {{ as_of_date() }}
        {% if is_incremental() %}
        and ticket_id in (select changed_tickets.ticket_id from changed_tickets)
        {% endif %}

),

status_starts as (

    -- a ticket is `new` from its creation, then takes each status change's new_status
    select
        ticket_id,
        created_at as started_at,
        cast(null as bigint) as event_id,
        'new' as ticket_status,
        0 as is_change
    from tickets

    union all

    select
        ticket_id,
        created_at as started_at,
        event_id,
        new_status as ticket_status,
        1 as is_change
    from status_changes

),

status_starts_clamped as (

    -- each start dated in the business zone; a change stamped before its ticket was created
    -- counts from the creation day. The events of a ticket that is not in tickets (orphans,
    -- or created after the as-of date) drop out.
    select
        status_starts.ticket_id,
        status_starts.started_at,
        status_starts.event_id,
        status_starts.ticket_status,
        status_starts.is_change,
        case
            when
                {{ to_business_date('status_starts.started_at') }}
                < {{ to_business_date('tickets.created_at') }}
                then {{ to_business_date('tickets.created_at') }}
            else {{ to_business_date('status_starts.started_at') }}
        end as valid_from
    from status_starts
    inner join tickets
        on status_starts.ticket_id = tickets.ticket_id

),

day_end_statuses as (

    -- the status a ticket ends each day with: the day's last change, else `new` on its
    -- creation day
    select
        ticket_id,
        ticket_status,
        valid_from,
        row_number() over (
            partition by ticket_id, valid_from
            order by is_change desc, started_at desc, event_id desc
        ) as day_rank
    from status_starts_clamped

),

final as (

    select
        ticket_id,
        ticket_status,
        valid_from,
        lead(valid_from) over (
            partition by ticket_id
            order by valid_from
        ) as valid_until,
        -- bookkeeping of the incremental runs (above)
        {{ as_of_date() }} as _as_of_date,
        (select inputs_loaded.inputs_loaded_at from inputs_loaded) as _inputs_loaded_at
    from day_end_statuses
    where day_rank = 1

)

select * from final
