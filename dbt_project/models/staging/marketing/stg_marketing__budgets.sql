with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        month,
        channel,
        planned_spend,
        currency,
        _file_name,
        _loaded_at,
        _load_id
    from {{ source('marketing', 'budget') }}

),

renamed as (

    select
        -- month is the text YYYY-MM; month_start is its first day
        cast(
            cast(month as {{ contract_type('text') }}) || '-01' as {{ contract_type('date') }}
        ) as month_start,
        cast(channel as {{ contract_type('text') }}) as channel,
        cast(planned_spend as {{ contract_type('decimal') }}) as planned_spend,
        cast(currency as {{ contract_type('text') }}) as currency,
        cast(_file_name as {{ contract_type('text') }}) as _file_name,
        cast(_loaded_at as {{ contract_type('timestamp') }}) as _loaded_at,
        cast(_load_id as {{ contract_type('text') }}) as _load_id
    from source

),

newest_file_per_month as (

    -- sources.md: the newest file of each kind wins for the months it covers. A month's rows
    -- all come from the newest file that has the month (files are named <kind>_<YYYY-MM-DD>.csv,
    -- so the greatest name is the newest); a row an older file has and the newest lacks is gone.
    select
        *,
        max(_file_name) over (partition by month_start) as newest_file_name
    from renamed

),

ranked as (

    -- one row per key of the winning file, should its rows arrive twice: the latest load wins
    select
        *,
        row_number() over (
            partition by month_start, channel
            order by _loaded_at desc nulls last
        ) as recency_rank
    from newest_file_per_month
    where _file_name = newest_file_name

),

final as (

    select
        month_start,
        channel,
        planned_spend,
        currency,
        _file_name,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
