{{
    config(
        materialized=incremental_materialization(),
        unique_key="signup_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "{{ delete_keys_gone_from_raw('signup_id', source('marketing', 'signups'), 'text') }}",
        ]),
    )
}}

with

source as (

    -- the contract's columns by name: dlt's own columns and new source fields stay in raw
    select
        signup_id,
        customer_id,
        email,
        signed_up_at,
        utm_source,
        utm_medium,
        utm_campaign,
        landing_page,
        updated_at,
        _loaded_at,
        _load_id
    from {{ source('marketing', 'signups') }}
    {{ changed_keys_only('signup_id', source('marketing', 'signups')) }}

),

renamed as (

    select
        cast(signup_id as {{ contract_type('text') }}) as signup_id,
        cast(customer_id as {{ contract_type('text') }}) as customer_id,
        cast(email as {{ contract_type('text') }}) as email,
        {{ normalize_email("cast(email as " ~ contract_type('text') ~ ")") }} as email_normalized,
        cast(signed_up_at as {{ contract_type('timestamp') }}) as signed_up_at,
        cast(utm_source as {{ contract_type('text') }}) as utm_source,
        cast(utm_medium as {{ contract_type('text') }}) as utm_medium,
        cast(utm_campaign as {{ contract_type('text') }}) as utm_campaign,
        cast(landing_page as {{ contract_type('text') }}) as landing_page,
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
            partition by signup_id
            order by updated_at desc nulls last, _loaded_at desc nulls last
        ) as recency_rank
    from renamed

),

final as (

    select
        signup_id,
        customer_id,
        email,
        email_normalized,
        signed_up_at,
        utm_source,
        utm_medium,
        utm_campaign,
        landing_page,
        updated_at,
        _loaded_at,
        _load_id
    from ranked
    where recency_rank = 1

)

select * from final
