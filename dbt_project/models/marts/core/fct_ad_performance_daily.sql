{#
    One row per (date_day, campaign_id) the ad platforms reported up to the as-of date
    (docs/marts.md "fct_ad_performance_daily"), spend in the reporting currency at the as-of fx rate
    of the ad date. A day whose account currency has no rate at or before it is left out (never
    guessed). date_day is the platforms' reporting date as delivered; it is not shifted to the
    business time zone (there is no timestamp to shift).

    Incremental, delete+insert on date_day: the platforms restate their last days, and an fx
    correction changes the spend of the days it covers. Each run recomputes every day from
    staging and rebuilds, whole, each day where any row is new, gone or different from
    {{ this }} (the table is its own watermark: see fct_orders). The post-hook removes days after
    the as-of date (a re-run for an earlier as-of date).
#}

{{
    config(
        materialized=incremental_materialization(),
        unique_key="date_day",
        incremental_strategy="delete+insert",
        on_schema_change="fail",
        post_hook=incremental_post_hooks([
            "delete from {{ this }} where date_day > {{ as_of_date() }}",
        ]),
    )
}}

{%- set compared_columns = [
    "channel",
    "impressions",
    "clicks",
    "spend",
    "platform_conversions",
] %}

with

ad_performance as (

    select * from {{ ref('stg_marketing__ad_performance') }}

),

fx_rates_daily as (

    select * from {{ ref('int_fx_rates_daily') }}

),

ad_days_converted as (

    select
        ad_performance.date_day,
        ad_performance.campaign_id,
        ad_performance.channel,
        ad_performance.impressions,
        ad_performance.clicks,
        cast(
            round(
                cast(ad_performance.spend as numeric(38, 2)) * fx_rates_daily.rate_to_reporting,
                2
            ) as numeric(18, 2)
        ) as spend,
        ad_performance.platform_conversions
    from ad_performance
    inner join fx_rates_daily
        on
            ad_performance.date_day = fx_rates_daily.date_day
            and ad_performance.currency = fx_rates_daily.currency
    where ad_performance.date_day <= {{ as_of_date() }}

),

{% if is_incremental() %}

existing_ad_days as (

    select * from {{ this }}

),

changed_days as (

    -- days with a row that is new, gone, or different in any column
    select distinct coalesce(ad_days_converted.date_day, existing_ad_days.date_day) as date_day
    from ad_days_converted
    full outer join existing_ad_days
        on
            ad_days_converted.date_day = existing_ad_days.date_day
            and ad_days_converted.campaign_id = existing_ad_days.campaign_id
    where
        ad_days_converted.date_day is null
        or existing_ad_days.date_day is null
        {%- for column in compared_columns %}
        or ad_days_converted.{{ column }} is distinct from existing_ad_days.{{ column }}
        {%- endfor %}

),

final as (

    select ad_days_converted.*
    from ad_days_converted
    inner join changed_days
        on ad_days_converted.date_day = changed_days.date_day

)

{% else %}

final as (

    select * from ad_days_converted

)

{% endif %}

select * from final
