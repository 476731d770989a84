with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        campaign_id,
        campaign_name,
        channel,
        objective,
        status,
        start_date,
        end_date,
        daily_budget,
        currency,
        updated_at,
        _loaded_at,
        _load_id
    from {{ source('marketing', 'campaigns') }}

),

renamed as (

    select
        cast(campaign_id as {{ contract_type('text') }}) as campaign_id,
        cast(campaign_name as {{ contract_type('text') }}) as campaign_name,
        cast(channel as {{ contract_type('text') }}) as channel,
        cast(objective as {{ contract_type('text') }}) as objective,
        cast(status as {{ contract_type('text') }}) as campaign_status,
        cast(start_date as {{ contract_type('date') }}) as start_date,
        cast(end_date as {{ contract_type('date') }}) as end_date,
        cast(daily_budget as {{ contract_type('decimal') }}) as daily_budget,
        cast(currency as {{ contract_type('text') }}) as currency,
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
            partition by campaign_id
            order by updated_at desc nulls last, _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        campaign_id,
        campaign_name,
        channel,
        objective,
        campaign_status,
        start_date,
        end_date,
        daily_budget,
        currency,
        updated_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
