{{
    config(
        materialized=incremental_materialization(),
        unique_key="event_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "{{ delete_keys_gone_from_raw('event_id', source('support', 'ticket_events'), 'int') }}",
        ]),
    )
}}

with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        event_id,
        ticket_id,
        created_at,
        event_type,
        author_role,
        is_public,
        new_status,
        score,
        _loaded_at,
        _load_id
    from {{ source('support', 'ticket_events') }}
    {{ changed_keys_only('event_id', source('support', 'ticket_events')) }}

),

renamed as (

    select
        cast(event_id as {{ contract_type('int') }}) as event_id,
        cast(ticket_id as {{ contract_type('int') }}) as ticket_id,
        cast(created_at as {{ contract_type('timestamp') }}) as created_at,
        cast(event_type as {{ contract_type('text') }}) as event_type,
        cast(author_role as {{ contract_type('text') }}) as author_role,
        cast(is_public as {{ contract_type('bool') }}) as is_public,
        cast(new_status as {{ contract_type('text') }}) as new_status,
        cast(score as {{ contract_type('text') }}) as score,
        cast(_loaded_at as {{ contract_type('timestamp') }}) as _loaded_at,
        cast(_load_id as {{ contract_type('text') }}) as _load_id
    from source

),

ranked as (

    -- one row per key even if raw holds several (a restatement, a replayed load):
    -- the latest load wins
    select
        *,
        row_number() over (
            partition by event_id
            order by _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        event_id,
        ticket_id,
        created_at,
        event_type,
        author_role,
        is_public,
        new_status,
        score,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
