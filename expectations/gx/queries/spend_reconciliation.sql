-- docs/quality.md: Σ spend in channel_roi_monthly = Σ spend in fct_ad_performance_daily (one row).
with

roi as (

    select coalesce(sum(spend), 0) as spend from marts.channel_roi_monthly

),

ads as (

    select coalesce(sum(spend), 0) as spend from marts.fct_ad_performance_daily

)

select
    roi.spend as channel_roi_spend,
    ads.spend as fct_ad_performance_spend,
    roi.spend - ads.spend as channel_roi_minus_fct_ad_performance
from roi
cross join ads
