{{
    config(
        materialized=incremental_materialization(),
        unique_key="time_entry_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "{{ delete_keys_gone_from_raw('time_entry_id', source('support', 'time_entries'), 'int') }}",
        ]),
    )
}}

with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        time_entry_id,
        ticket_id,
        agent_id,
        minutes,
        logged_at,
        _loaded_at,
        _load_id
    from {{ source('support', 'time_entries') }}
    {{ changed_keys_only('time_entry_id', source('support', 'time_entries')) }}

),

renamed as (

    select
        cast(time_entry_id as {{ contract_type('int') }}) as time_entry_id,
        cast(ticket_id as {{ contract_type('int') }}) as ticket_id,
        cast(agent_id as {{ contract_type('int') }}) as agent_id,
        cast(minutes as {{ contract_type('int') }}) as minutes,
        cast(logged_at as {{ contract_type('timestamp') }}) as logged_at,
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
            partition by time_entry_id
            order by _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        time_entry_id,
        ticket_id,
        agent_id,
        minutes,
        logged_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
