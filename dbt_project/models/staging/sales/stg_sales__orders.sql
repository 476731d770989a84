{{
    config(
        materialized=incremental_materialization(),
        unique_key="order_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "{{ delete_keys_gone_from_raw('order_id', source('sales', 'orders'), 'text') }}",
        ]),
    )
}}

with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        order_id,
        customer_id,
        order_status,
        ordered_at,
        currency,
        subtotal,
        discount,
        shipping,
        tax,
        total,
        updated_at,
        _loaded_at,
        _load_id
    from {{ source('sales', 'orders') }}
    {{ changed_keys_only('order_id', source('sales', 'orders')) }}

),

renamed as (

    select
        cast(order_id as {{ contract_type('text') }}) as order_id,
        cast(customer_id as {{ contract_type('text') }}) as customer_id,
        cast(order_status as {{ contract_type('text') }}) as order_status,
        cast(ordered_at as {{ contract_type('timestamp') }}) as ordered_at,
        cast(currency as {{ contract_type('text') }}) as currency,
        cast(subtotal as {{ contract_type('decimal') }}) as subtotal,
        cast(discount as {{ contract_type('decimal') }}) as discount,
        cast(shipping as {{ contract_type('decimal') }}) as shipping,
        cast(tax as {{ contract_type('decimal') }}) as tax,
        cast(total as {{ contract_type('decimal') }}) as total,
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
            partition by order_id
            order by updated_at desc nulls last, _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        order_id,
        customer_id,
        order_status,
        ordered_at,
        currency,
        subtotal,
        discount,
        shipping,
        tax,
        total,
        updated_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
