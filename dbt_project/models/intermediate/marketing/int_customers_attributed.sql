{#
    One row per customer created up to the as-of date: the channel (and campaign) that acquired
    them, from their signup's utm parameters (marts.md "dim_customers"):

    1. utm_campaign names a known campaign        -> that campaign's channel and campaign_id;
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

signups_attributed as (

    select
        first_signups.customer_id,
        first_signups.signup_id,
        first_signups.signed_up_at,
        first_signups.utm_source,
        first_signups.utm_medium,
        first_signups.utm_campaign,
        campaigns.campaign_id as acquisition_campaign_id,
        case
            when campaigns.campaign_id is not null then campaigns.channel
            when utm_source_channels.channel is not null then utm_source_channels.channel
            when
                first_signups.utm_source is null
                and first_signups.utm_medium is null
                and first_signups.utm_campaign is null
                then 'organic'
            else 'unattributed'
        end as acquisition_channel,
        case
            when campaigns.campaign_id is not null then 'campaign'
            when utm_source_channels.channel is not null then 'utm_source'
            when
                first_signups.utm_source is null
                and first_signups.utm_medium is null
                and first_signups.utm_campaign is null
                then 'no_utm'
            else 'unknown_utm'
        end as attribution_rule
    from first_signups
    left join campaigns
        on first_signups.utm_campaign = campaigns.campaign_id
    left join utm_source_channels
        on first_signups.utm_source = utm_source_channels.utm_source

),

final as (

    select
        customers_to_date.customer_id,
        signups_attributed.signup_id,
        signups_attributed.signed_up_at,
        signups_attributed.utm_source,
        signups_attributed.utm_medium,
        signups_attributed.utm_campaign,
        coalesce(signups_attributed.acquisition_channel, 'unattributed') as acquisition_channel,
        signups_attributed.acquisition_campaign_id,
        coalesce(signups_attributed.attribution_rule, 'no_signup') as attribution_rule
    from customers_to_date
    left join signups_attributed
        on customers_to_date.customer_id = signups_attributed.customer_id

)

select * from final
