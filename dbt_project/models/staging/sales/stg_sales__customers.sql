{{
    config(
        materialized=incremental_materialization(),
        unique_key="customer_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "{{ delete_keys_gone_from_raw('customer_id', source('sales', 'customers'), 'text') }}",
        ]),
    )
}}

with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        customer_id,
        email,
        full_name,
        country,
        segment,
        created_at,
        updated_at,
        _loaded_at,
        _load_id
    from {{ source('sales', 'customers') }}
    {{ changed_keys_only('customer_id', source('sales', 'customers')) }}

),

renamed as (

    select
        cast(customer_id as {{ contract_type('text') }}) as customer_id,
        cast(email as {{ contract_type('text') }}) as email,
        {{ normalize_email("cast(email as " ~ contract_type('text') ~ ")") }} as email_normalized,
        cast(full_name as {{ contract_type('text') }}) as full_name,
        cast(country as {{ contract_type('text') }}) as country,
        cast(segment as {{ contract_type('text') }}) as segment,
        cast(created_at as {{ contract_type('timestamp') }}) as created_at,
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
            partition by customer_id
            order by updated_at desc nulls last, _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        customer_id,
        email,
        email_normalized,
        full_name,
        country,
        segment,
        created_at,
        updated_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
