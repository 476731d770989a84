with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        product_id,
        sku,
        product_name,
        category,
        list_price,
        unit_cost,
        updated_at,
        _loaded_at,
        _load_id
    from {{ source('sales', 'products') }}

),

renamed as (

    select
        cast(product_id as {{ contract_type('text') }}) as product_id,
        cast(sku as {{ contract_type('text') }}) as sku,
        cast(product_name as {{ contract_type('text') }}) as product_name,
        cast(category as {{ contract_type('text') }}) as category,
        cast(list_price as {{ contract_type('decimal') }}) as list_price,
        cast(unit_cost as {{ contract_type('decimal') }}) as unit_cost,
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
            partition by product_id
            order by updated_at desc nulls last, _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        product_id,
        sku,
        product_name,
        category,
        list_price,
        unit_cost,
        updated_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
