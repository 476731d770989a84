{#
    Incremental staging: a staging model reads only the raw rows of the keys that the loads
    since its last build brought (docs/decisions.md "The incremental day").

    changed_keys_only(key, relation): the WHERE clause of a staging model's source CTE. On an
    incremental run it keeps every raw version of each key that has a row loaded after the newest
    _loaded_at already in {{ this }}. ">", not ">=": every row of one load carries the load's
    stamp, and loads and builds never overlap (the single-slot warehouse_writer pool), so the
    rows at the newest stamp are all in {{ this }} already; ">=" would take that whole load
    again, which after a first backfill is every row. Every version of such a key is read, not only the new ones, so the model's
    "newest version wins" ranking sees exactly what a full build sees for that key; delete+insert
    on the key then replaces the key's row. Keys without a new raw row keep the row they have,
    which a full build would compute the same way from the same raw rows.

    delete_keys_gone_from_raw(key, relation, contract_field_type): the post-hook that removes
    keys raw no longer holds (a ticket deleted at the source, an orphan swept into quarantine, a
    raw table rebuilt from the archive). A full build would not produce them. Finding them is a
    whole-table anti-join of staging against raw (2 s for the 12.6 M order items of scale 50),
    so it runs only when audit.raw_removals holds a removal from that raw table that no build
    has applied yet: every path that removes raw rows records one there first
    (ops_warehouse/pipeline/audit.py, record_raw_removal). The removal is marked applied in the
    same transaction as the delete. Without that table (a warehouse no load has opened since it
    came), the anti-join always runs. A full build marks the removals applied: it read raw as it
    is. Raw rows deleted by hand, outside those paths, stay in staging until the weekly full
    build (docs/decisions.md "The incremental day").

    The weekly full build (--full-refresh) recomputes every row; tests/dbt/
    test_incremental_equivalence.py proves the chain of incremental days equals it.
#}
{% macro changed_keys_only(key, relation) -%}
    {%- if is_incremental() %}
    where {{ key }} in (
        select {{ key }}
        from {{ relation }}
        where
            cast(_loaded_at as {{ contract_type('timestamp') }}) > (
                select coalesce(max(_loaded_at), cast('1900-01-01 00:00:00+00' as {{ contract_type('timestamp') }}))
                from {{ this }}
            )
    )
    {%- endif %}
{%- endmacro %}

{% macro delete_keys_gone_from_raw(key, relation, contract_field_type) -%}
    {%- set raw_table = relation.schema ~ "." ~ relation.identifier -%}
    {%- set removals = adapter.get_relation(
        database=this.database, schema="audit", identifier="raw_removals"
    ) -%}
    {%- set pending = true -%}
    {%- if execute and removals is not none -%}
        {%- set found = run_query(
            "select count(*) from " ~ removals
            ~ " where raw_table = '" ~ raw_table ~ "' and applied_at is null"
        ) -%}
        {%- set pending = found.columns[0].values()[0] > 0 -%}
    {%- endif -%}
    {%- if pending and is_incremental() %}
    delete from {{ this }}
    where not exists (
        select 1
        from {{ relation }} as raw_rows
        where
            raw_rows.{{ key }} is not null
            and cast(raw_rows.{{ key }} as {{ contract_type(contract_field_type) }})
            = {{ this.identifier }}.{{ key }}
    );
    {%- endif %}
    {%- if pending and removals is not none %}
    update {{ removals }}
    set applied_at = current_timestamp
    where raw_table = '{{ raw_table }}' and applied_at is null
    {%- endif %}
{%- endmacro %}

{#
    The bookkeeping of the incremental intermediate models (int_orders_converted,
    int_ticket_events_summarised, int_tickets_status_periods): each row keeps the newest
    _loaded_at among the inputs of the build that wrote it (_inputs_loaded_at) and that build's
    as-of date (_as_of_date).

    last_build(): the watermark and as-of date of the builds so far, from {{ this }}.
    since_last_build(dated_by, as_of_moved_back, loaded_at): the condition on a staging row that
    makes its key one to recompute: loaded after the last build's watermark, or (dated_by, a
    timestamp column) dated after the last build's as-of date, or (as_of_moved_back) any row
    when this build's as-of date is earlier than the last one's. Reads the CTE `last_build`.
    newest_load_of(relations): the newest _loaded_at among the relations a build reads, the
    next build's watermark.
#}
{% macro last_build() -%}
    select
        max(_inputs_loaded_at) as inputs_loaded_at,
        max(_as_of_date) as as_of_date
    from {{ this }}
{%- endmacro %}

{% macro since_last_build(dated_by=none, as_of_moved_back=false, loaded_at="_loaded_at") -%}
    {{ loaded_at }} > (select last_build.inputs_loaded_at from last_build)
    {%- if dated_by %}
        or {{ to_business_date(dated_by) }} > (select last_build.as_of_date from last_build)
    {%- endif %}
    {%- if as_of_moved_back %}
        or {{ as_of_date() }} < (select last_build.as_of_date from last_build)
    {%- endif %}
{%- endmacro %}

{#
    The tickets an incremental day recomputes in the per-ticket models (int_ticket_events_summarised,
    int_tickets_status_periods), each from all its events: a ticket or event loaded since the last
    build, tickets created and events made after the last build's as-of date, tickets of staging
    not held yet, and every ticket when the as-of date moved back. Reads the CTE `last_build`.

    tickets_not_created_by_as_of(): the post-hook that removes the tickets that no longer qualify
    (gone from staging, or created after the as-of date of a re-run for an earlier day).
#}
{% macro changed_tickets() -%}
    select ticket_id
    from {{ ref('stg_support__tickets') }}
    where {{ since_last_build(dated_by="created_at", as_of_moved_back=true) }}

    union

    select ticket_id
    from {{ ref('stg_support__ticket_events') }}
    where {{ since_last_build(dated_by="created_at") }}

    union

    {{ keys_not_held_yet("ticket_id", ref('stg_support__tickets')) }}
{%- endmacro %}

{#
    The orders an incremental day recomputes in int_orders_converted (the rules are in its
    header), written by the model's pre-hook into a temporary table of this build's
    connection, changed_orders_table(). As a CTE, DuckDB hashed the 12.6 M order items of
    scale 50 to find the 112 k changed orders among them, not the other way round: it cannot
    tell how few rows the CTE gives; a table's row count it knows. Reads {{ this }}'s
    watermark (last_build()).
#}
{% macro changed_orders_table() -%}
    {{ this.identifier }}__changed
{%- endmacro %}

{% macro changed_orders() -%}
    with last_build as (

        {{ last_build() }}

    )

    select order_id
    from {{ ref('stg_sales__orders') }}
    where {{ since_last_build(dated_by="ordered_at", as_of_moved_back=true) }}

    union

    select order_id
    from {{ ref('stg_sales__order_items') }}
    where {{ since_last_build() }}

    union

    select order_id
    from {{ ref('stg_sales__refunds') }}
    where {{ since_last_build(dated_by="refunded_at") }}

    union

    select changed_items.order_id
    from {{ ref('stg_sales__order_items') }} as changed_items
    inner join {{ ref('stg_sales__products') }} as changed_products
        on changed_items.product_id = changed_products.product_id
    where {{ since_last_build(loaded_at="changed_products._loaded_at") }}

    union

    select kept.order_id
    from {{ this }} as kept
    left join {{ ref('int_fx_rates_daily') }} as kept_fx
        on
            kept.order_date = kept_fx.date_day
            and kept.order_currency = kept_fx.currency
    where
        kept_fx.rate_to_reporting is distinct from kept.fx_rate_to_reporting
        or kept_fx.usd_rate_to_reporting is distinct from kept._usd_rate_to_reporting

    union

    {{ keys_not_held_yet("order_id", ref('stg_sales__orders')) }}
{%- endmacro %}

{#- the keys of `relation` (staging) that {{ this }} does not hold yet -#}
{% macro keys_not_held_yet(key, relation) -%}
    select staged.{{ key }}
    from {{ relation }} as staged
    where not exists (
        select 1 from {{ this }} as kept
        where kept.{{ key }} = staged.{{ key }}
    )
{%- endmacro %}

{% macro tickets_not_created_by_as_of() -%}
    delete from {{ this }}
    where ticket_id not in (
        select ticket_id from {{ ref('stg_support__tickets') }}
        where {{ to_business_date('created_at') }} <= {{ as_of_date() }}
    )
{%- endmacro %}

{% macro newest_load_of(relations) -%}
    select max(loaded_at) as inputs_loaded_at
    from (
        {%- for relation in relations %}
        select max(_loaded_at) as loaded_at from {{ relation }}
        {%- if not loop.last %}
        union all
        {%- endif %}
        {%- endfor %}
    ) as loads
{%- endmacro %}

{#
    Where a model is incremental. The incremental models (staging's growing tables, the
    incremental intermediate models and marts) write delete+insert and prune with delete
    post-hooks. Spark's Parquet tables take no delete, so on Spark they are plain tables, built
    in full on every run (docs/decisions.md); their is_incremental() branches are never taken
    there.

    incremental_materialization(): "incremental" (DuckDB, PostgreSQL) or "table" (Spark).
    incremental_post_hooks(hooks): the model's pruning post-hooks where it is incremental, none
    where it is a table (a full build has nothing to prune).

        config(
            materialized=incremental_materialization(),
            ...
            post_hook=incremental_post_hooks(["delete from {{ this }} where ..."]),
        )
#}
{% macro incremental_materialization() -%}
    {{ return(adapter.dispatch("incremental_materialization")()) }}
{%- endmacro %}

{% macro default__incremental_materialization() -%}
    {{ return("incremental") }}
{%- endmacro %}

{% macro spark__incremental_materialization() -%}
    {{ return("table") }}
{%- endmacro %}

{% macro incremental_post_hooks(hooks) -%}
    {{ return(adapter.dispatch("incremental_post_hooks")(hooks)) }}
{%- endmacro %}

{% macro default__incremental_post_hooks(hooks) -%}
    {#- then a mart's value checks (macros/value_checks.sql), on the rows that stay -#}
    {{ return(hooks + ["{{ value_checks(after_model_hooks=true) }}"]) }}
{%- endmacro %}

{% macro spark__incremental_post_hooks(hooks) -%}
    {{ return([]) }}
{%- endmacro %}
