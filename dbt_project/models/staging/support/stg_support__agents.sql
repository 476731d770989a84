with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        agent_id,
        agent_name,
        team,
        hourly_cost,
        currency,
        active,
        _loaded_at,
        _load_id
    from {{ source('support', 'agents') }}

),

renamed as (

    select
        cast(agent_id as {{ contract_type('int') }}) as agent_id,
        cast(agent_name as {{ contract_type('text') }}) as agent_name,
        cast(team as {{ contract_type('text') }}) as team,
        cast(hourly_cost as {{ contract_type('decimal') }}) as hourly_cost,
        cast(currency as {{ contract_type('text') }}) as currency,
        cast(active as {{ contract_type('bool') }}) as is_active,
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
            partition by agent_id
            order by _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        agent_id,
        agent_name,
        team,
        hourly_cost,
        currency,
        is_active,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
