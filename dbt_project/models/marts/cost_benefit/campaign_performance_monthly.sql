{#
    One row per (business month, campaign) (docs/marts.md "campaign_performance_monthly"): the
    measures of channel_roi_monthly at campaign grain. Campaigns are those of dim_campaigns plus
    any campaign the ad facts report before the campaigns list knows it (so that spend
    reconciles with fct_ad_performance_daily). Each campaign has a row in every month from its
    first month to its last, within the months channel_roi_monthly covers (the first month with
    any data to the as-of month): from the month it starts (or of its first ad day, signup or
    new customer, if earlier) to the month it ends (the as-of month while it runs), or later
    while customers it acquired still sign up or place their first order.

    - spend, impressions, clicks: fct_ad_performance_daily of the campaign
      (int_ad_performance_monthly); months: int_acquisition_months.
    - signups, new_customers and new_customer_*_90d: customers whose
      dim_customers.acquisition_campaign_id is the campaign (a known utm_campaign;
      int_signups_monthly, int_new_customers_monthly); customers attributed to a channel through
      utm_source only have no campaign and appear only in channel_roi_monthly.
    - planned_spend, budget_variance, budget_utilization, planned_spend_to_date: NULL. The budget
      sheet plans spend per channel and month, not per campaign, and splitting it would invent
      a plan (docs/decisions.md).
    - projected_spend: for the as-of month spend / elapsed days x days in month (rounded half up
      to the cent in integer cents, as in channel_roi_monthly); spend for past months.
    - Ratios from the month's components, NULL when the denominator is 0; cac also when there is
      no spend.
#}

with

ad_activity as (

    select * from {{ ref('int_ad_performance_monthly') }}

),

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

signup_activity as (

    select * from {{ ref('int_signups_monthly') }}

),

new_customer_activity as (

    select * from {{ ref('int_new_customers_monthly') }}

),

month_days as (

    select * from {{ ref('int_acquisition_months') }}

),

as_of_months as (

    select
        cast({{ dbt.date_trunc("month", "cast(" ~ as_of_date() ~ " as timestamp)") }} as date)
            as as_of_month

),

ad_months as (

    select
        month_start,
        campaign_id,
        max(channel) as channel,
        sum(spend) as spend,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from ad_activity
    group by 1, 2

),

campaign_signup_months as (

    select
        month_start,
        campaign_id,
        sum(signups) as signups
    from signup_activity
    where campaign_id is not null
    group by 1, 2

),

new_customer_months as (

    select
        month_start,
        campaign_id,
        sum(new_customers) as new_customers,
        sum(net_revenue_90d) as net_revenue_90d,
        sum(gross_margin_90d) as gross_margin_90d
    from new_customer_activity
    group by 1, 2

),

campaign_activity_months as (

    -- the months that bound each campaign's rows: its start and end months (the as-of month
    -- while it runs) and every month it has activity in
    select
        campaign_id,
        cast({{ dbt.date_trunc("month", "cast(start_date as timestamp)") }} as date)
            as month_start,
        channel
    from campaigns
    union all
    select
        campaigns.campaign_id,
        coalesce(
            cast({{ dbt.date_trunc("month", "cast(campaigns.end_date as timestamp)") }} as date),
            as_of_months.as_of_month
        ) as month_start,
        campaigns.channel
    from campaigns
    cross join as_of_months
    union all
    select
        campaign_id,
        month_start,
        channel
    from ad_months
    union all
    select
        campaign_id,
        month_start,
        channel
    from signup_activity
    where campaign_id is not null
    union all
    select
        campaign_id,
        month_start,
        channel
    from new_customer_activity
    where campaign_id is not null

),

campaign_list as (

    select
        campaign_activity_months.campaign_id,
        coalesce(max(campaigns.channel), max(campaign_activity_months.channel)) as channel,
        min(campaign_activity_months.month_start) as first_month,
        max(campaign_activity_months.month_start) as last_month
    from campaign_activity_months
    left join campaigns
        on campaign_activity_months.campaign_id = campaigns.campaign_id
    group by 1

),

campaign_months as (

    select
        month_days.month_start,
        campaign_list.campaign_id,
        campaign_list.channel,
        month_days.is_as_of_month,
        month_days.days_in_month,
        month_days.elapsed_days,
        month_days.is_window_complete,
        coalesce(ad_months.spend, 0) as spend,
        coalesce(ad_months.impressions, 0) as impressions,
        coalesce(ad_months.clicks, 0) as clicks,
        coalesce(campaign_signups.signups, 0) as signups,
        coalesce(new_customer_months.new_customers, 0) as new_customers,
        coalesce(new_customer_months.net_revenue_90d, 0) as net_revenue_90d,
        coalesce(new_customer_months.gross_margin_90d, 0) as gross_margin_90d
    from campaign_list
    inner join month_days
        on
            campaign_list.first_month <= month_days.month_start
            and campaign_list.last_month >= month_days.month_start
    left join ad_months
        on
            month_days.month_start = ad_months.month_start
            and campaign_list.campaign_id = ad_months.campaign_id
    left join campaign_signup_months as campaign_signups
        on
            month_days.month_start = campaign_signups.month_start
            and campaign_list.campaign_id = campaign_signups.campaign_id
    left join new_customer_months
        on
            month_days.month_start = new_customer_months.month_start
            and campaign_list.campaign_id = new_customer_months.campaign_id

),

prorated as (

    -- spend / elapsed days x days in month, half up to the cent in integer cents (exact on
    -- both databases; see channel_roi_monthly)
    select
        *,
        case
            when not is_as_of_month then spend
            else cast(
                cast(
                    floor(
                        cast(
                            2 * cast(spend * 100 as bigint) * days_in_month + elapsed_days
                            as {{ contract_type('float') }}
                        )
                        / cast(2 * elapsed_days as {{ contract_type('float') }})
                    ) as numeric(18, 2)
                ) * 0.01 as numeric(18, 2)
            )
        end as projected_spend
    from campaign_months

),

final as (

    select
        month_start,
        campaign_id,
        channel,
        cast(spend as numeric(18, 2)) as spend,
        cast(null as numeric(18, 2)) as planned_spend,
        cast(null as numeric(18, 2)) as budget_variance,
        cast(null as {{ contract_type('float') }}) as budget_utilization,
        cast(null as numeric(18, 2)) as planned_spend_to_date,
        cast(projected_spend as numeric(18, 2)) as projected_spend,
        cast(impressions as bigint) as impressions,
        cast(clicks as bigint) as clicks,
        cast(signups as bigint) as signups,
        cast(new_customers as bigint) as new_customers,
        -- no spend, no acquisition cost to spread: NULL rather than a "free" customer at 0
        nullif(cast(spend as {{ contract_type('float') }}), 0)
        / nullif(cast(new_customers as {{ contract_type('float') }}), 0) as cac,
        cast(net_revenue_90d as numeric(18, 2)) as new_customer_net_revenue_90d,
        cast(gross_margin_90d as numeric(18, 2)) as new_customer_gross_margin_90d,
        cast(net_revenue_90d as {{ contract_type('float') }})
        / nullif(cast(spend as {{ contract_type('float') }}), 0) as roas_90d,
        cast(gross_margin_90d - spend as {{ contract_type('float') }})
        / nullif(cast(spend as {{ contract_type('float') }}), 0) as roi_90d,
        is_window_complete
    from prorated

)

select * from final
