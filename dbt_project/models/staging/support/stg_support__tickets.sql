{{
    config(
        materialized=incremental_materialization(),
        unique_key="ticket_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "{{ delete_keys_gone_from_raw('ticket_id', source('support', 'tickets'), 'int') }}",
        ]),
    )
}}

with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        ticket_id,
        requester_email,
        subject,
        category,
        channel,
        priority,
        status,
        assignee_id,
        created_at,
        updated_at,
        _loaded_at,
        _load_id
    from {{ source('support', 'tickets') }}
    {{ changed_keys_only('ticket_id', source('support', 'tickets')) }}

),

renamed as (

    select
        cast(ticket_id as {{ contract_type('int') }}) as ticket_id,
        cast(requester_email as {{ contract_type('text') }}) as requester_email,
        {{ normalize_email("cast(requester_email as " ~ contract_type('text') ~ ")") }}
            as requester_email_normalized,
        cast(subject as {{ contract_type('text') }}) as subject,
        cast(category as {{ contract_type('text') }}) as category,
        cast(channel as {{ contract_type('text') }}) as channel,
        cast(priority as {{ contract_type('text') }}) as priority,
        cast(status as {{ contract_type('text') }}) as ticket_status,
        cast(assignee_id as {{ contract_type('int') }}) as assignee_id,
        cast(created_at as {{ contract_type('timestamp') }}) as created_at,
        cast(updated_at as {{ contract_type('timestamp') }}) as updated_at,
        cast(_loaded_at as {{ contract_type('timestamp') }}) as _loaded_at,
        cast(_load_id as {{ contract_type('text') }}) as _load_id
    from source

),

ranked as (

    -- one row per key even if raw holds several versions (a replayed or appended load):
    -- the newest updated_at wins, then the latest load
    select
        *,
        row_number() over (
            partition by ticket_id
            order by updated_at desc nulls last, _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        ticket_id,
        requester_email,
        requester_email_normalized,
        subject,
        category,
        channel,
        priority,
        ticket_status,
        assignee_id,
        created_at,
        updated_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
