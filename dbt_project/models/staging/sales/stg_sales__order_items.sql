{{
    config(
        materialized=incremental_materialization(),
        unique_key="order_item_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "{{ delete_keys_gone_from_raw('order_item_id', source('sales', 'order_items'), 'text') }}",
        ]),
    )
}}

with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        order_item_id,
        order_id,
        product_id,
        quantity,
        unit_price,
        updated_at,
        _loaded_at,
        _load_id
    from {{ source('sales', 'order_items') }}
    {{ changed_keys_only('order_item_id', source('sales', 'order_items')) }}

),

renamed as (

    select
        cast(order_item_id as {{ contract_type('text') }}) as order_item_id,
        cast(order_id as {{ contract_type('text') }}) as order_id,
        cast(product_id as {{ contract_type('text') }}) as product_id,
        cast(quantity as {{ contract_type('int') }}) as quantity,
        cast(unit_price as {{ contract_type('decimal') }}) as unit_price,
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
            partition by order_item_id
            order by updated_at desc nulls last, _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        order_item_id,
        order_id,
        product_id,
        quantity,
        unit_price,
        updated_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
