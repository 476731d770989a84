{#
    One row per ad campaign known to the campaigns API (its latest version): the dimension the
    ad facts and customer acquisition point to.
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

)

select * from final
