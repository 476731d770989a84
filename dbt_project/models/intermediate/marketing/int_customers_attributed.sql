{#
    One row per customer created up to the as-of date: the channel (and campaign) that acquired
    them, from their signup's utm parameters (docs/marts.md "dim_customers"):

    1. utm_campaign names a known campaign (one started by the as-of date, as in
       dim_campaigns)                             -> that campaign's channel and campaign_id;
    2. else utm_source maps to a channel (seed)   -> that channel, no campaign;
    3. else the signup carries no utm at all      -> organic;
    4. else (utm present but unmappable)          -> unattributed (docs/decisions.md);
    and a customer without a signup               -> unattributed.

    A customer has at most one signup; should the tracker deliver several, the earliest counts.
#}

with

customers as (

    select * from {{ ref('stg_sales__customers') }}

),

signups as (

    select * from {{ ref('stg_marketing__signups') }}

),

campaigns as (

    select * from {{ ref('stg_marketing__campaigns') }}

),

campaigns_started as (

    -- the campaigns of dim_campaigns: those started by the as-of date
    select
        campaign_id,
        channel
    from campaigns
    where
        start_date is null
        or start_date <= {{ as_of_date() }}

),

utm_source_channels as (

    select
        lower(trim(utm_source)) as utm_source,
        channel
    from {{ ref('utm_source_channels') }}

),

customers_to_date as (

    select
        customer_id,
        created_at
    from customers
    where {{ to_business_date("created_at") }} <= {{ as_of_date() }}

),

signups_cleaned as (

    -- an empty utm parameter is no parameter
    select
        signup_id,
        customer_id,
        signed_up_at,
        nullif(lower(trim(utm_source)), '') as utm_source,
        nullif(trim(utm_medium), '') as utm_medium,
        nullif(trim(utm_campaign), '') as utm_campaign
    from signups
    where
        customer_id is not null
        and {{ to_business_date("signed_up_at") }} <= {{ as_of_date() }}

),

ranked_signups as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by signed_up_at, signup_id
        ) as signup_rank
    from signups_cleaned

),

first_signups as (

    select * from ranked_signups
    where signup_rank = 1

),

customer_rows as (

    -- Customers and their first signups stacked on customer_id and merged by aggregation below
    -- rather than joined: PostgreSQL cannot estimate the rows of staging's latest-version filter
    -- and would pair every customer with every signup in a nested loop.
    select
        customer_id,
        1 as is_customer,
        null as signup_id,
        null as signed_up_at,
        null as utm_source,
        null as utm_medium,
        null as utm_campaign
    from customers_to_date

    union all

    select
        customer_id,
        0 as is_customer,
        signup_id,
        signed_up_at,
        utm_source,
        utm_medium,
        utm_campaign
    from first_signups

),

customers_with_signups as (

    -- at most one signup row per customer, so max() just picks its values
    select
        customer_id,
        max(is_customer) as is_customer,
        max(signup_id) as signup_id,
        max(signed_up_at) as signed_up_at,
        max(utm_source) as utm_source,
        max(utm_medium) as utm_medium,
        max(utm_campaign) as utm_campaign
    from customer_rows
    group by customer_id

),

customers_attributed as (

    select
        customers_with_signups.customer_id,
        customers_with_signups.signup_id,
        customers_with_signups.signed_up_at,
        customers_with_signups.utm_source,
        customers_with_signups.utm_medium,
        customers_with_signups.utm_campaign,
        campaigns_started.campaign_id as acquisition_campaign_id,
        case
            when customers_with_signups.signup_id is null then 'unattributed'
            when campaigns_started.campaign_id is not null then campaigns_started.channel
            when utm_source_channels.channel is not null then utm_source_channels.channel
            when
                customers_with_signups.utm_source is null
                and customers_with_signups.utm_medium is null
                and customers_with_signups.utm_campaign is null
                then 'organic'
            else 'unattributed'
        end as acquisition_channel,
        case
            when customers_with_signups.signup_id is null then 'no_signup'
            when campaigns_started.campaign_id is not null then 'campaign'
            when utm_source_channels.channel is not null then 'utm_source'
            when
                customers_with_signups.utm_source is null
                and customers_with_signups.utm_medium is null
                and customers_with_signups.utm_campaign is null
                then 'no_utm'
            else 'unknown_utm'
        end as attribution_rule
    from customers_with_signups
    left join campaigns_started
        on customers_with_signups.utm_campaign = campaigns_started.campaign_id
    left join utm_source_channels
        on customers_with_signups.utm_source = utm_source_channels.utm_source
    where customers_with_signups.is_customer = 1

),

final as (

    select
        customer_id,
        signup_id,
        signed_up_at,
        utm_source,
        utm_medium,
        utm_campaign,
        acquisition_channel,
        acquisition_campaign_id,
        attribution_rule
    from customers_attributed

)

select * from final
