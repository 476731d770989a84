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

final as (

    {# docs/sources.md: the newest file of each kind wins for the months it covers #}
    {{ newest_sheet_rows('renamed', 'channel', [
        "month_start",
        "channel",
        "planned_spend",
        "currency",
        "_file_name",
        "_loaded_at",
        "_load_id",
    ]) }}

)

select * from final
