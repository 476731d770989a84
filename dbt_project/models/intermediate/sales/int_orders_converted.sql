{#
    One row per order placed up to the as-of date, its money in the reporting currency at the
    as-of fx rate of the order date (docs/marts.md "fct_orders"). Orders whose currency has no rate
    at or before their date are left out (never guessed). Each money column is rounded to the cent
    once, per order: Σ over orders is what the marts publish and what the reconciliation test
    recomputes from staging.

    Non-recognized orders (pending, cancelled) keep their row with zero money columns.

    Incremental (delete+insert on order_id): an incremental day recomputes only the orders an
    input may have changed (docs/decisions.md "The incremental day"), each from all its rows:
    - orders, items or refunds loaded since the last build (their staging _loaded_at after the
      newest _inputs_loaded_at kept here: that load's rows were all read by the build that kept
      it, see macros/incremental_staging.sql);
    - orders placed, and refunds made, after the last build's as-of date (they enter the window);
    - orders with an item of a product loaded since the last build (a cost correction restates
      the cost of goods of every order of that product, however old);
    - orders whose fx row (int_fx_rates_daily, either rate) differs from the one kept here (a
      corrected or late rate), and orders of staging not kept here (a new order, or an order that
      had no rate until now);
    - every order, when the as-of date moved back (a re-run for an earlier day).
    The pre-hooks write those order ids into a temporary table before the select reads them
    (changed_orders(), macros/incremental_staging.sql). The post-hook removes orders that no
    longer qualify. A full refresh and any chain of incremental runs give the same rows
    (tests/dbt/test_incremental_equivalence.py).
#}

{{
    config(
        materialized=incremental_materialization(),
        unique_key="order_id",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        pre_hook=[
            "{% if is_incremental() %}drop table if exists {{ changed_orders_table() }}{% endif %}",
            "{% if is_incremental() %}create temporary table {{ changed_orders_table() }} as"
            ~ " {{ changed_orders() }}{% endif %}",
        ],
        post_hook=incremental_post_hooks([
            "delete from {{ this }} where order_date > {{ as_of_date() }}"
            ~ " or order_id not in (select order_id from {{ ref('stg_sales__orders') }})"
            ~ " or not exists (select 1 from {{ ref('int_fx_rates_daily') }} as fx"
            ~ " where fx.date_day = {{ this.identifier }}.order_date"
            ~ " and fx.currency = {{ this.identifier }}.order_currency)",
        ]),
    )
}}

with

{% if is_incremental() %}

changed_orders as (

    select order_id from {{ changed_orders_table() }}

),

{% endif %}

orders as (

    select * from {{ ref('stg_sales__orders') }}
    {% if is_incremental() %}
    where order_id in (select changed_orders.order_id from changed_orders)
    {% endif %}

),

order_items as (

    select * from {{ ref('stg_sales__order_items') }}
    {% if is_incremental() %}
    where order_id in (select changed_orders.order_id from changed_orders)
    {% endif %}

),

products as (

    select * from {{ ref('stg_sales__products') }}

),

refunds as (

    select * from {{ ref('stg_sales__refunds') }}
    {% if is_incremental() %}
    where order_id in (select changed_orders.order_id from changed_orders)
    {% endif %}

),

fx_rates_daily as (

    select * from {{ ref('int_fx_rates_daily') }}

),

-- the newest load among the inputs this build read: the next build's watermark
inputs_loaded as (

    {{ newest_load_of([
        ref('stg_sales__orders'),
        ref('stg_sales__order_items'),
        ref('stg_sales__refunds'),
        ref('stg_sales__products'),
    ]) }}

),

order_lines as (

    -- Orders, their refunds and their items stacked on order_id and summed once below, rather
    -- than orders joined to pre-aggregated refunds and items: PostgreSQL cannot estimate the
    -- rows of staging's latest-version filter and would otherwise re-run those aggregates once
    -- per order in a nested loop (minutes instead of a fraction of a second).
    select
        order_id,
        customer_id,
        order_status,
        ordered_at,
        currency as order_currency,
        subtotal - discount as gross_revenue_local,
        discount as discount_local,
        cast(0 as numeric(18, 2)) as refund_amount_local,
        cast(0 as numeric(38, 2)) as cogs_usd,
        1 as is_order
    from orders

    union all

    -- refunds made up to the as-of date, in the order's currency
    select
        order_id,
        null as customer_id,
        null as order_status,
        null as ordered_at,
        null as order_currency,
        0 as gross_revenue_local,
        0 as discount_local,
        amount as refund_amount_local,
        0 as cogs_usd,
        0 as is_order
    from refunds
    where {{ to_business_date("refunded_at") }} <= {{ as_of_date() }}

    union all

    -- cost of goods in USD (products carry unit_cost in USD); an item whose product is
    -- unknown costs nothing here (staging's relationships test warns about it)
    select
        order_items.order_id,
        null as customer_id,
        null as order_status,
        null as ordered_at,
        null as order_currency,
        0 as gross_revenue_local,
        0 as discount_local,
        0 as refund_amount_local,
        order_items.quantity * products.unit_cost as cogs_usd,
        0 as is_order
    from order_items
    inner join products
        on order_items.product_id = products.product_id

),

orders_summed as (

    select
        order_id,
        max(customer_id) as customer_id,
        max(order_status) as order_status,
        max(ordered_at) as ordered_at,
        max(order_currency) as order_currency,
        sum(gross_revenue_local) as gross_revenue_local,
        sum(discount_local) as discount_local,
        sum(refund_amount_local) as refund_amount_local,
        sum(cogs_usd) as cogs_usd,
        max(is_order) as is_order
    from order_lines
    group by order_id

),

orders_to_date as (

    select
        order_id,
        customer_id,
        order_status,
        ordered_at,
        {{ to_business_date("ordered_at") }} as order_date,
        order_currency,
        order_status in ('paid', 'shipped', 'completed', 'refunded') as is_recognized,
        gross_revenue_local,
        discount_local,
        refund_amount_local,
        cogs_usd
    from orders_summed
    where
        is_order = 1
        and {{ to_business_date("ordered_at") }} <= {{ as_of_date() }}

),

converted as (

    select
        orders_to_date.order_id,
        orders_to_date.customer_id,
        orders_to_date.ordered_at,
        orders_to_date.order_date,
        orders_to_date.order_status,
        orders_to_date.order_currency,
        orders_to_date.is_recognized,
        order_fx.rate_to_reporting as fx_rate_to_reporting,
        order_fx.usd_rate_to_reporting,
        round(
            cast(orders_to_date.gross_revenue_local as numeric(38, 2))
            * order_fx.rate_to_reporting,
            2
        ) as gross_revenue_converted,
        round(
            cast(orders_to_date.discount_local as numeric(38, 2)) * order_fx.rate_to_reporting,
            2
        ) as discount_converted,
        -- all refunds at the ORDER date's rate: a refund gives back what the order brought in
        round(
            cast(orders_to_date.refund_amount_local as numeric(38, 2))
            * order_fx.rate_to_reporting,
            2
        ) as refunds_converted,
        round(
            cast(orders_to_date.cogs_usd as numeric(38, 2)) * order_fx.usd_rate_to_reporting,
            2
        ) as cogs_converted
    from orders_to_date
    -- one join for both rates (see int_fx_rates_daily.usd_rate_to_reporting): a second join on
    -- the USD row turns into a per-order nested loop on PostgreSQL
    inner join fx_rates_daily as order_fx
        on
            orders_to_date.order_date = order_fx.date_day
            and orders_to_date.order_currency = order_fx.currency

),

money as (

    select
        order_id,
        customer_id,
        ordered_at,
        order_date,
        order_status,
        order_currency,
        is_recognized,
        fx_rate_to_reporting,
        usd_rate_to_reporting,
        case when is_recognized then gross_revenue_converted else 0 end as gross_revenue,
        case when is_recognized then discount_converted else 0 end as discount,
        case
            when is_recognized then least(refunds_converted, gross_revenue_converted)
            else 0
        end as refund_amount,
        -- a refunded order's goods came back: no cost of goods sold
        case
            when is_recognized and order_status <> 'refunded' then cogs_converted
            else 0
        end as cogs
    from converted

),

final as (

    select
        order_id,
        customer_id,
        ordered_at,
        order_date,
        order_status,
        order_currency,
        is_recognized,
        fx_rate_to_reporting,
        cast(gross_revenue as numeric(18, 2)) as gross_revenue,
        cast(discount as numeric(18, 2)) as discount,
        cast(refund_amount as numeric(18, 2)) as refund_amount,
        cast(gross_revenue - refund_amount as numeric(18, 2)) as net_revenue,
        cast(cogs as numeric(18, 2)) as cogs,
        cast(gross_revenue - refund_amount - cogs as numeric(18, 2)) as gross_margin,
        -- bookkeeping of the incremental runs (above)
        usd_rate_to_reporting as _usd_rate_to_reporting,
        {{ as_of_date() }} as _as_of_date,
        (select inputs_loaded.inputs_loaded_at from inputs_loaded) as _inputs_loaded_at
    from money

)

select * from final
