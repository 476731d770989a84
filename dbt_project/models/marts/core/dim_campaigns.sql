{#
    One row per ad campaign known to the campaigns API (its latest version) that has started by
    the as-of date: the dimension the ad facts and customer acquisition point to. A campaign
    planned to start later is not in the marts yet (nothing after the as-of date).
#}

with

campaigns as (

    select * from {{ ref('stg_marketing__campaigns') }}

),

final as (

    select
        campaign_id,
        campaign_name,
        channel,
        objective,
        campaign_status as status,
        start_date,
        end_date
    from campaigns
    where
        start_date is null
        or start_date <= {{ as_of_date() }}

)

select * from final
