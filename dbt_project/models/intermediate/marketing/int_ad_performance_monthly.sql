{#
    One row per (month, channel, campaign) with ad activity in fct_ad_performance_daily: its
    spend, impressions and clicks summed over the month (the month of date_day). The cost-benefit
    marts roll it up to their own grain (channel_roi_monthly by channel,
    campaign_performance_monthly by campaign); its months are among those int_acquisition_months
    starts from.
#}

with

ad_days as (

    select * from {{ ref('fct_ad_performance_daily') }}

),

ad_months as (

    select
        cast({{ dbt.date_trunc("month", "cast(date_day as timestamp)") }} as date) as month_start,
        channel,
        campaign_id,
        sum(spend) as spend,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from ad_days
    group by 1, 2, 3

),

final as (

    select
        month_start,
        channel,
        campaign_id,
        cast(spend as numeric(18, 2)) as spend,
        cast(impressions as bigint) as impressions,
        cast(clicks as bigint) as clicks
    from ad_months

)

select * from final
