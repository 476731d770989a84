{#
    One row per (dimension, dimension_value) (docs/marts.md "churn_drivers"): how churn differs by
    acquisition channel, segment, country and the support the customer got in their first 90
    days.

    Population: dim_customers whose first recognized order is at least 90 days before the as-of
    date (first order date <= as-of - 90), so that every one of them has had the full 90 days in
    which a one-off buyer turns churned; churned = dim_customers.is_churned.

    first_90d_support, from the customer's tickets (fct_tickets.customer_id) created in the 90
    days starting on the first order's date (created_date from first order date to first order
    date + 89, the same window as channel_roi_monthly's *_90d measures):
      - none: no such ticket;
      - poor: at least one of them breached its SLA or carries a bad rating (its latest one);
      - good: tickets, none breached (an undecided SLA does not count as breached) nor rated bad.
    A missing segment or country is published as `unknown`.
#}

with

customers as (

    select * from {{ ref('dim_customers') }}

),

tickets as (

    select * from {{ ref('fct_tickets') }}

),

population as (

    select
        customer_id,
        acquisition_channel,
        coalesce(segment, 'unknown') as segment,
        coalesce(country, 'unknown') as country,
        is_churned,
        {{ to_business_date("first_order_at") }} as first_order_date
    from customers
    where
        first_order_at is not null
        and {{ to_business_date("first_order_at") }}
        <= cast({{ dbt.dateadd("day", -90, as_of_date()) }} as date)

),

customer_tickets as (

    select
        customer_id,
        created_date,
        coalesce(is_sla_breached, false) or coalesce(satisfaction = 'bad', false)
            as is_poor_experience
    from tickets
    where customer_id is not null

),

first_90d_tickets as (

    select
        population.customer_id,
        count(*) as tickets,
        max(case when customer_tickets.is_poor_experience then 1 else 0 end)
            as has_poor_experience
    from population
    inner join customer_tickets
        on
            population.customer_id = customer_tickets.customer_id
            and population.first_order_date <= customer_tickets.created_date
            and customer_tickets.created_date
            < cast({{ dbt.dateadd("day", 90, "population.first_order_date") }} as date)
    group by population.customer_id

),

population_classified as (

    select
        population.*,
        case
            when first_90d_tickets.customer_id is null then 'none'
            when first_90d_tickets.has_poor_experience = 1 then 'poor'
            else 'good'
        end as first_90d_support
    from population
    left join first_90d_tickets
        on population.customer_id = first_90d_tickets.customer_id

),

dimension_values as (

    select
        'acquisition_channel' as dimension,
        acquisition_channel as dimension_value,
        is_churned
    from population_classified

    union all

    select
        'segment' as dimension,
        segment as dimension_value,
        is_churned
    from population_classified

    union all

    select
        'country' as dimension,
        country as dimension_value,
        is_churned
    from population_classified

    union all

    select
        'first_90d_support' as dimension,
        first_90d_support as dimension_value,
        is_churned
    from population_classified

),

dimension_counts as (

    select
        dimension,
        dimension_value,
        count(*) as customers,
        sum(case when is_churned then 1 else 0 end) as churned_customers
    from dimension_values
    group by
        dimension,
        dimension_value

),

population_counts as (

    select
        count(*) as customers,
        sum(case when is_churned then 1 else 0 end) as churned_customers
    from population

),

rates as (

    select
        dimension_counts.dimension,
        dimension_counts.dimension_value,
        dimension_counts.customers,
        dimension_counts.churned_customers,
        cast(dimension_counts.churned_customers as {{ contract_type('float') }})
        / nullif(cast(dimension_counts.customers as {{ contract_type('float') }}), 0) as churn_rate,
        cast(population_counts.churned_customers as {{ contract_type('float') }})
        / nullif(cast(population_counts.customers as {{ contract_type('float') }}), 0)
            as population_churn_rate
    from dimension_counts
    cross join population_counts

),

final as (

    select
        dimension,
        dimension_value,
        cast(customers as bigint) as customers,
        cast(churned_customers as bigint) as churned_customers,
        churn_rate,
        churn_rate / nullif(population_churn_rate, 0) as relative_risk,
        population_churn_rate
    from rates

)

select * from final
