{{
    config(
        materialized=incremental_materialization(),
        unique_key="refund_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "{{ delete_keys_gone_from_raw('refund_id', source('sales', 'refunds'), 'text') }}",
        ]),
    )
}}

with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        refund_id,
        order_id,
        refunded_at,
        amount,
        reason,
        updated_at,
        _loaded_at,
        _load_id
    from {{ source('sales', 'refunds') }}
    {{ changed_keys_only('refund_id', source('sales', 'refunds')) }}

),

renamed as (

    select
        cast(refund_id as {{ contract_type('text') }}) as refund_id,
        cast(order_id as {{ contract_type('text') }}) as order_id,
        cast(refunded_at as {{ contract_type('timestamp') }}) as refunded_at,
        cast(amount as {{ contract_type('decimal') }}) as amount,
        cast(reason as {{ contract_type('text') }}) as reason,
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
            partition by refund_id
            order by updated_at desc nulls last, _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        refund_id,
        order_id,
        refunded_at,
        amount,
        reason,
        updated_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
