{#-
    One row per ticket created up to the as-of date: what its audit trail says at the end of the
    as-of date (business zone). Later events are ignored, so a run for an earlier day sees the
    ticket as it was then.

    Incremental (delete+insert on ticket_id): an incremental day recomputes, from all their
    events, the tickets whose ticket row or any event was loaded since the last build (the
    newest _inputs_loaded_at kept here), tickets created and events made after the last
    build's as-of date, tickets of staging not kept here, and every ticket when the as-of date
    moved back (macros/incremental_staging.sql changed_tickets; docs/decisions.md "The
    incremental day"). The post-hook removes tickets that no
    longer qualify. A full refresh and any chain of incremental runs give the same rows.
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

ticket_events as (

    select
        event_id,
        ticket_id,
        created_at,
        event_type,
        author_role,
        is_public,
        new_status,
        score,
        _loaded_at
    from {{ ref('stg_support__ticket_events') }}
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
        new_status,
        -- a ticket is born `new`: its first status change starts from there
        coalesce(
            lag(new_status) over (
                partition by ticket_id
                order by created_at, event_id
            ),
            'new'
        ) as from_status,
        row_number() over (
            partition by ticket_id
            order by created_at desc, event_id desc
        ) as recency_rank
    from ticket_events
    where
        event_type = 'status_change'
        and new_status is not null

),

status_summary as (

    select
        ticket_id,
        max(case when recency_rank = 1 then new_status end) as ticket_status,
        max(case when new_status = 'solved' then created_at end) as last_solved_at,
        sum(
            case
                when from_status = 'solved' and new_status in ('new', 'open', 'pending') then 1
                else 0
            end
        ) as reopen_count
    from status_changes
    group by ticket_id

),

first_replies as (

    -- internal notes (not public) and the requester's own comments are no reply
    select
        ticket_id,
        min(created_at) as first_reply_at
    from ticket_events
    where
        event_type = 'comment'
        and author_role = 'agent'
        and is_public
    group by ticket_id

),

satisfaction_ratings as (

    select
        ticket_id,
        score,
        created_at,
        row_number() over (
            partition by ticket_id
            order by created_at desc, event_id desc
        ) as recency_rank
    from ticket_events
    where
        event_type = 'satisfaction_rated'
        and score is not null

),

event_activity as (

    select
        ticket_id,
        max(created_at) as last_event_at,
        max(_loaded_at) as last_event_loaded_at
    from ticket_events
    group by ticket_id

),

final as (

    select
        tickets.ticket_id,
        coalesce(status_summary.ticket_status, 'new') as ticket_status,
        first_replies.first_reply_at,
        case
            when coalesce(status_summary.ticket_status, 'new') in ('solved', 'closed')
                then status_summary.last_solved_at
        end as solved_at,
        cast(coalesce(status_summary.reopen_count, 0) as bigint) as reopen_count,
        satisfaction_ratings.score as satisfaction,
        satisfaction_ratings.created_at as satisfaction_rated_at,
        event_activity.last_event_at,
        event_activity.last_event_loaded_at,
        -- bookkeeping of the incremental runs (above)
        {{ as_of_date() }} as _as_of_date,
        (select inputs_loaded.inputs_loaded_at from inputs_loaded) as _inputs_loaded_at
    from tickets
    left join status_summary
        on tickets.ticket_id = status_summary.ticket_id
    left join first_replies
        on tickets.ticket_id = first_replies.ticket_id
    left join satisfaction_ratings
        on
            tickets.ticket_id = satisfaction_ratings.ticket_id
            and satisfaction_ratings.recency_rank = 1
    left join event_activity
        on tickets.ticket_id = event_activity.ticket_id

)

select * from final
