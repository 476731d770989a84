with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        rate_date,
        currency,
        rate_to_usd,
        _loaded_at,
        _load_id
    from {{ source('sales', 'fx_rates') }}

),

renamed as (

    select
        cast(rate_date as {{ contract_type('date') }}) as rate_date,
        cast(currency as {{ contract_type('text') }}) as currency,
        cast(rate_to_usd as {{ contract_type('float') }}) as rate_to_usd,
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
            partition by rate_date, currency
            order by _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        rate_date,
        currency,
        rate_to_usd,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
