{#
    docs/quality.md reconciliation: Σ spend in channel_roi_monthly = Σ spend in
    fct_ad_performance_daily, to the cent; and the same for campaign_performance_monthly, which
    must not lose the spend of a campaign either. Both marts sum the published daily spend, so
    the only way to fail is a day, channel or campaign falling outside their month x channel or
    month x campaign grid. Returns one row per mart whose total differs.
#}

with

ad_days as (

    select * from {{ ref('fct_ad_performance_daily') }}

),

channel_roi_monthly as (

    select * from {{ ref('channel_roi_monthly') }}

),

campaign_performance_monthly as (

    select * from {{ ref('campaign_performance_monthly') }}

),

published as (

    select sum(spend) as spend
    from ad_days

),

mart_totals as (

    select
        'channel_roi_monthly' as mart,
        sum(spend) as spend
    from channel_roi_monthly

    union all

    select
        'campaign_performance_monthly' as mart,
        sum(spend) as spend
    from campaign_performance_monthly

),

final as (

    select
        mart_totals.mart,
        mart_totals.spend as mart_spend,
        published.spend as fct_ad_performance_daily_spend
    from mart_totals
    cross join published
    where abs(coalesce(mart_totals.spend, 0) - coalesce(published.spend, 0)) >= 0.01

)

select * from final
