with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        date,
        channel,
        campaign_id,
        impressions,
        clicks,
        spend,
        currency,
        platform_conversions,
        _loaded_at,
        _load_id
    from {{ source('marketing', 'ad_performance') }}

),

renamed as (

    select
        cast(date as {{ contract_type('date') }}) as date_day,
        cast(channel as {{ contract_type('text') }}) as channel,
        cast(campaign_id as {{ contract_type('text') }}) as campaign_id,
        cast(impressions as {{ contract_type('int') }}) as impressions,
        cast(clicks as {{ contract_type('int') }}) as clicks,
        cast(spend as {{ contract_type('decimal') }}) as spend,
        cast(currency as {{ contract_type('text') }}) as currency,
        cast(platform_conversions as {{ contract_type('decimal') }}) as platform_conversions,
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
            partition by date_day, campaign_id
            order by _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        date_day,
        channel,
        campaign_id,
        impressions,
        clicks,
        spend,
        currency,
        platform_conversions,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
