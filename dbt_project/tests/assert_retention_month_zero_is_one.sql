{#
    docs/quality.md "retention month 0 = 1.0": in its own month every cohort customer has ordered
    (the cohort is defined by that order), so retained_customers = cohort_size and retention_rate =
    1 on every months_since_first_order = 0 row. Returns the cohorts where that fails.
#}

with

retention_cohorts as (

    select * from {{ ref('retention_cohorts') }}

),

final as (

    select
        cohort_month,
        cohort_size,
        retained_customers,
        retention_rate
    from retention_cohorts
    where
        months_since_first_order = 0
        and (
            retained_customers <> cohort_size
            or retention_rate is null
            or retention_rate <> 1
        )

)

select * from final
