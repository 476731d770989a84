{#
    docs/quality.md "churn identity" on every month of churn_monthly:
    active_at_end = active_at_start - churned + new_customers + reactivated.
    It holds by construction (see churn_monthly.sql); a failure means one of the definitions
    drifted. Returns the months where it breaks, with both sides.
#}

with

churn_monthly as (

    select * from {{ ref('churn_monthly') }}

),

final as (

    select
        month_start,
        active_at_end,
        active_at_start - churned + new_customers + reactivated as active_at_end_from_flows
    from churn_monthly
    where active_at_end <> active_at_start - churned + new_customers + reactivated

)

select * from final
