{#-
    One row per helpdesk ticket created up to the as-of date (docs/marts.md "fct_tickets").

    Incremental (delete+insert on ticket_id): a run recomputes only the tickets that may have
    changed since the rows in {{ this }} were written, and must give the same rows as a full
    refresh. A ticket is recomputed when
      - it is not published yet (created since, or its as-of date came);
      - its ticket row is newer than the watermark (updated_at), or any of its rows was loaded
        after the newest load behind the published rows (_loaded_at: late arrivals);
      - it has events newer than the watermark (last_event_at): replies, solves, reopens, ratings;
      - its SLA was still undecided (is_sla_breached null): time alone can decide it;
      - a cheap input differs from what was published: its time entries (handle_minutes,
        support_cost: late entries, agents' hourly_cost, restated fx), its customer match, or its
        SLA target (the seed was edited);
      - the run's as-of date is earlier than the last run's (all tickets; the post-hook deletes
        rows created after it).
    The post-hook also deletes the tickets staging no longer holds (deleted at the source).
-#}
{{
    config(
        materialized=incremental_materialization(),
        unique_key='ticket_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook=incremental_post_hooks([
            "{{ tickets_not_created_by_as_of() }}",
        ]),
    )
}}

with

tickets as (

    select
        ticket_id,
        requester_email,
        requester_email_normalized,
        created_at,
        channel,
        priority,
        category,
        assignee_id,
        updated_at,
        _loaded_at
    from {{ ref('stg_support__tickets') }}
    where {{ to_business_date('created_at') }} <= {{ as_of_date() }}

),

customers as (

    select
        customer_id,
        email_normalized,
        created_at
    from {{ ref('stg_sales__customers') }}
    where
        email_normalized is not null
        and {{ to_business_date('created_at') }} <= {{ as_of_date() }}

),

ticket_events_summarised as (

    select * from {{ ref('int_ticket_events_summarised') }}

),

time_entries_costed as (

    select
        ticket_id,
        minutes,
        cost
    from {{ ref('int_time_entries_costed') }}

),

sla_targets as (

    select
        priority,
        sla_target_minutes
    from {{ ref('sla_targets') }}

),

customer_emails as (

    -- should two customers share an address, the ticket goes to the one who signed up first
    select
        customer_id,
        email_normalized,
        row_number() over (
            partition by email_normalized
            order by created_at, customer_id
        ) as email_rank
    from customers

),

ticket_customers as (

    select
        tickets.ticket_id,
        customer_emails.customer_id
    from tickets
    left join customer_emails
        on
            tickets.requester_email_normalized = customer_emails.email_normalized
            and customer_emails.email_rank = 1

),

ticket_time as (

    select
        ticket_id,
        cast(sum(minutes) as bigint) as handle_minutes,
        cast(sum(cost) as numeric(18, 2)) as support_cost
    from time_entries_costed
    group by ticket_id

),

{% if is_incremental() %}

published as (

    select * from {{ this }}

),

watermarks as (

    select
        max(updated_at) as max_updated_at,
        max(last_event_at) as max_last_event_at,
        max(_loaded_at) as max_loaded_at
    from published

),

changed_tickets as (

    -- new ticket versions, and ticket rows loaded late
    select tickets.ticket_id
    from tickets
    cross join watermarks
    where
        tickets.updated_at > watermarks.max_updated_at
        or tickets._loaded_at > watermarks.max_loaded_at

    union

    -- new events, and events loaded late
    select ticket_events_summarised.ticket_id
    from ticket_events_summarised
    cross join watermarks
    where
        ticket_events_summarised.last_event_at > watermarks.max_last_event_at
        or ticket_events_summarised.last_event_loaded_at > watermarks.max_loaded_at

    union

    -- tickets not published yet, and the cheap inputs that differ from what was published
    select tickets.ticket_id
    from tickets
    left join published
        on tickets.ticket_id = published.ticket_id
    left join ticket_customers
        on tickets.ticket_id = ticket_customers.ticket_id
    left join ticket_time
        on tickets.ticket_id = ticket_time.ticket_id
    left join sla_targets
        on tickets.priority = sla_targets.priority
    where
        published.ticket_id is null
        or published.is_sla_breached is null
        or published.customer_id is distinct from ticket_customers.customer_id
        or published.handle_minutes <> coalesce(ticket_time.handle_minutes, 0)
        or published.support_cost <> coalesce(ticket_time.support_cost, 0)
        or published.sla_target_minutes is distinct from sla_targets.sla_target_minutes

    union

    -- a run for an earlier as-of date than the last one: everything
    select tickets.ticket_id
    from tickets
    cross join watermarks
    where {{ to_business_date('watermarks.max_last_event_at') }} > {{ as_of_date() }}

),

tickets_to_build as (

    select tickets.*
    from tickets
    inner join changed_tickets
        on tickets.ticket_id = changed_tickets.ticket_id

),

{% else %}

tickets_to_build as (

    select * from tickets

),

{% endif %}

joined as (

    select
        tickets_to_build.ticket_id,
        ticket_customers.customer_id,
        {{ email_sha256('tickets_to_build.requester_email') }} as requester_email_sha256,
        tickets_to_build.created_at,
        {{ to_business_date('tickets_to_build.created_at') }} as created_date,
        tickets_to_build.channel,
        tickets_to_build.priority,
        tickets_to_build.category,
        ticket_events_summarised.ticket_status as status,
        tickets_to_build.assignee_id,
        ticket_events_summarised.first_reply_at,
        {{ seconds_between(
            'tickets_to_build.created_at', 'ticket_events_summarised.first_reply_at'
        ) }} / 60 as first_reply_minutes,
        ticket_events_summarised.solved_at,
        {{ seconds_between('tickets_to_build.created_at', 'ticket_events_summarised.solved_at') }}
        / 60 as full_resolution_minutes,
        ticket_events_summarised.reopen_count,
        sla_targets.sla_target_minutes,
        -- the instant the first reply was due
        {{ dbt.dateadd('minute', 'sla_targets.sla_target_minutes', 'tickets_to_build.created_at') }}
            as first_reply_due_at,
        ticket_events_summarised.satisfaction,
        ticket_events_summarised.satisfaction_rated_at,
        coalesce(ticket_time.handle_minutes, 0) as handle_minutes,
        coalesce(ticket_time.support_cost, 0) as support_cost,
        tickets_to_build.updated_at,
        ticket_events_summarised.last_event_at,
        case
            when ticket_events_summarised.last_event_loaded_at > tickets_to_build._loaded_at
                then ticket_events_summarised.last_event_loaded_at
            else tickets_to_build._loaded_at
        end as _loaded_at
    from tickets_to_build
    inner join ticket_events_summarised
        on tickets_to_build.ticket_id = ticket_events_summarised.ticket_id
    left join ticket_customers
        on tickets_to_build.ticket_id = ticket_customers.ticket_id
    left join sla_targets
        on tickets_to_build.priority = sla_targets.priority
    left join ticket_time
        on tickets_to_build.ticket_id = ticket_time.ticket_id

),

final as (

    select
        ticket_id,
        customer_id,
        requester_email_sha256,
        created_at,
        created_date,
        channel,
        priority,
        category,
        status,
        assignee_id,
        first_reply_at,
        first_reply_minutes,
        solved_at,
        full_resolution_minutes,
        reopen_count,
        sla_target_minutes,
        case
            when first_reply_at is not null
                then first_reply_minutes > sla_target_minutes
            -- no reply yet: breached once the due instant is before the end of the as-of date
            when {{ to_business_date('first_reply_due_at') }} <= {{ as_of_date() }}
                then true
        end as is_sla_breached,
        satisfaction,
        handle_minutes,
        cast(support_cost as numeric(18, 2)) as support_cost,
        satisfaction_rated_at,
        updated_at,
        last_event_at,
        _loaded_at
    from joined

)

select * from final
