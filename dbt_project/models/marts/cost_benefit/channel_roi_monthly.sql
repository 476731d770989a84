{#
    One row per (business month, acquisition channel) (docs/marts.md "channel_roi_monthly"): every
    paid channel (those of the ad facts, campaigns, budgets and customers) plus `organic` and
    `unattributed`, in every month from the first month with any data (an ad day, a budget
    month, a signup or a first order) to the as-of month (int_acquisition_months); a
    channel-month without activity has zeros and NULL ratios.

    - spend, impressions, clicks: fct_ad_performance_daily (already in the reporting currency),
      by month in int_ad_performance_monthly.
    - planned_spend: the budget sheet (stg_marketing__budgets) converted at the as-of rate of the
      month's first day (int_fx_rates_daily, docs/decisions.md), rounded to the cent; NULL when
      the channel has no budget row for the month or the month's first day has no rate.
    - planned_spend_to_date / projected_spend: for the as-of month, planned_spend x elapsed days /
      days in month and spend / elapsed days x days in month (rounded half up to the cent, in
      integer cents so that DuckDB and PostgreSQL agree to the cent); for past months
      planned_spend and spend.
    - signups: customers (dim_customers) who signed up in the month, by their acquisition channel
      (int_signups_monthly).
    - new_customers: customers whose first recognized order (fct_orders.is_first_order) is in the
      month, by acquisition_channel (a customer missing from dim_customers: `unattributed`;
      int_new_customers_monthly);
      new_customer_*_90d: their recognized orders with order_date < first order date + 90 days,
      as far as they have happened by the as-of date; is_window_complete tells when they all
      have (month end + 90 days <= as-of date).
    - Ratios from the month's components, NULL when the denominator is 0; cac is NULL as well
      when there is no spend (organic and unattributed never spend, so their cac, roas_90d,
      roi_90d and budget_utilization are always NULL).
#}

with

ad_activity as (

    select * from {{ ref('int_ad_performance_monthly') }}

),

campaigns as (

    select * from {{ ref('dim_campaigns') }}

),

budgets as (

    select * from {{ ref('stg_marketing__budgets') }}

),

fx_rates_daily as (

    select * from {{ ref('int_fx_rates_daily') }}

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
        channel,
        sum(spend) as spend,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from ad_activity
    group by 1, 2

),

budgets_to_date as (

    select budgets.*
    from budgets
    cross join as_of_months
    where budgets.month_start <= as_of_months.as_of_month

),

budgets_converted as (

    select
        budgets_to_date.month_start,
        budgets_to_date.channel,
        round(
            cast(budgets_to_date.planned_spend as numeric(38, 2))
            * fx_rates_daily.rate_to_reporting,
            2
        ) as planned_spend
    from budgets_to_date
    inner join fx_rates_daily
        on
            budgets_to_date.month_start = fx_rates_daily.date_day
            and budgets_to_date.currency = fx_rates_daily.currency

),

signup_months as (

    select
        month_start,
        channel,
        sum(signups) as signups
    from signup_activity
    group by 1, 2

),

new_customer_months as (

    select
        month_start,
        channel,
        sum(new_customers) as new_customers,
        sum(net_revenue_90d) as net_revenue_90d,
        sum(gross_margin_90d) as gross_margin_90d
    from new_customer_activity
    group by 1, 2

),

channels as (

    -- from the aggregated inputs: PostgreSQL estimates a union by the rows it reads
    select channel from ad_months
    union
    select channel from campaigns
    union
    select channel from budgets_to_date
    union
    select channel from signup_months
    union
    select channel from new_customer_months
    union
    select 'organic' as channel
    union
    select 'unattributed' as channel

),

channel_months as (

    select
        month_days.month_start,
        channels.channel,
        month_days.is_as_of_month,
        month_days.days_in_month,
        month_days.elapsed_days,
        month_days.is_window_complete,
        coalesce(ad_months.spend, 0) as spend,
        budgets_converted.planned_spend,
        coalesce(ad_months.impressions, 0) as impressions,
        coalesce(ad_months.clicks, 0) as clicks,
        coalesce(signup_months.signups, 0) as signups,
        coalesce(new_customer_months.new_customers, 0) as new_customers,
        coalesce(new_customer_months.net_revenue_90d, 0) as net_revenue_90d,
        coalesce(new_customer_months.gross_margin_90d, 0) as gross_margin_90d
    from month_days
    cross join channels
    left join ad_months
        on
            month_days.month_start = ad_months.month_start
            and channels.channel = ad_months.channel
    left join budgets_converted
        on
            month_days.month_start = budgets_converted.month_start
            and channels.channel = budgets_converted.channel
    left join signup_months
        on
            month_days.month_start = signup_months.month_start
            and channels.channel = signup_months.channel
    left join new_customer_months
        on
            month_days.month_start = new_customer_months.month_start
            and channels.channel = new_customer_months.channel

),

cents as (

    -- planned spend and spend in integer cents, for exact prorating below
    select
        *,
        cast(planned_spend * 100 as bigint) as planned_spend_cents,
        cast(spend * 100 as bigint) as spend_cents
    from channel_months

),

prorated as (

    -- round(cents x a / b) half up in integers: floor((2 x cents x a + b) / (2 x b)). The
    -- quotient of two doubles below 2^53 is correctly rounded on both databases, and a
    -- non-integer quotient lies at least 1 / (2 x b) from the next integer, so floor() is
    -- exact (decimal division would be a double on DuckDB and a numeric on PostgreSQL, which
    -- can round a half cent differently).
    select
        *,
        case
            when not is_as_of_month then planned_spend
            else cast(
                cast(
                    floor(
                        cast(
                            2 * planned_spend_cents * elapsed_days + days_in_month
                            as {{ contract_type('float') }}
                        )
                        / cast(2 * days_in_month as {{ contract_type('float') }})
                    ) as numeric(18, 2)
                ) * 0.01 as numeric(18, 2)
            )
        end as planned_spend_to_date,
        case
            when not is_as_of_month then spend
            else cast(
                cast(
                    floor(
                        cast(
                            2 * spend_cents * days_in_month + elapsed_days
                            as {{ contract_type('float') }}
                        )
                        / cast(2 * elapsed_days as {{ contract_type('float') }})
                    ) as numeric(18, 2)
                ) * 0.01 as numeric(18, 2)
            )
        end as projected_spend
    from cents

),

final as (

    select
        month_start,
        channel,
        cast(spend as numeric(18, 2)) as spend,
        cast(planned_spend as numeric(18, 2)) as planned_spend,
        cast(spend - planned_spend as numeric(18, 2)) as budget_variance,
        cast(spend as {{ contract_type('float') }})
        / nullif(cast(planned_spend as {{ contract_type('float') }}), 0) as budget_utilization,
        cast(planned_spend_to_date as numeric(18, 2)) as planned_spend_to_date,
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
