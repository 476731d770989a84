{#
    One row per (business month, acquisition channel, acquisition campaign) with signups: the
    customers of dim_customers who signed up in the month (signed_up_at in the business time
    zone), by their acquisition_channel and acquisition_campaign_id (null: attributed through
    utm_source, organic or unattributed). Customers without a signup are left out. The
    cost-benefit marts roll it up to their own grain.
#}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

signup_months as (

    select
        cast(
            {{ dbt.date_trunc(
                "month", "cast(" ~ to_business_date("signed_up_at") ~ " as timestamp)"
            ) }}
            as date
        ) as month_start,
        acquisition_channel as channel,
        acquisition_campaign_id as campaign_id,
        count(*) as signups
    from customers
    where signed_up_at is not null
    group by 1, 2, 3

),

final as (

    select
        month_start,
        channel,
        campaign_id,
        cast(signups as bigint) as signups
    from signup_months

)

select * from final
