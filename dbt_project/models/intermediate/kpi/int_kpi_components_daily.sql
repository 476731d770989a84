{#-
    One row per business day of dim_date (the earliest date of any source to the as-of date): the
    components kpi_daily's metrics are made of, so that any grain can recompute its ratios from
    them (docs/marts.md: a weekly CTR is Σ clicks / Σ impressions of the week). Days without
    activity have zeros.

    - Sums (add up over days): ad spend, impressions, clicks; signups; new customers, recognized
      orders and their money; tickets created and solved, SLA-decided and SLA-met tickets created,
      ratings and good ratings; support cost.
    - Point-in-time (the state at the end of the day; a period takes its last day's):
      active_customers and open_backlog.
    Medians and distinct customer counts do not add up over days; int_kpi_periods_measured takes
    them from the underlying rows.

    Dates are business dates (var business_tz); money is in the reporting currency, as published
    by the facts this model reads.
-#}
with

calendar as (

    select
        date_day,
        week_start,
        month_start
    from {{ ref('dim_date') }}

),

ad_performance as (

    select
        date_day,
        impressions,
        clicks,
        spend
    from {{ ref('fct_ad_performance_daily') }}

),

signups as (

    select signed_up_at
    from {{ ref('stg_marketing__signups') }}

),

orders as (

    select
        customer_id,
        order_date,
        is_first_order,
        gross_revenue,
        net_revenue,
        gross_margin
    from {{ ref('fct_orders') }}
    where is_recognized

),

tickets as (

    select
        created_date,
        solved_at,
        is_sla_breached
    from {{ ref('fct_tickets') }}

),

latest_ratings as (

    select
        rated_date,
        satisfaction
    from {{ ref('int_tickets_latest_rating') }}

),

time_entries as (

    select
        logged_date,
        cost
    from {{ ref('int_time_entries_costed') }}

),

tickets_status_daily as (

    select
        date_day,
        open_backlog
    from {{ ref('int_tickets_status_daily') }}

),

ads_daily as (

    select
        date_day,
        sum(spend) as spend,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from ad_performance
    group by date_day

),

signups_daily as (

    select
        {{ to_business_date('signed_up_at') }} as date_day,
        count(*) as signups
    from signups
    where {{ to_business_date('signed_up_at') }} <= {{ as_of_date() }}
    group by {{ to_business_date('signed_up_at') }}

),

orders_daily as (

    select
        order_date as date_day,
        count(*) as orders,
        -- fct_orders flags each customer's first recognized order once
        sum(case when is_first_order then 1 else 0 end) as new_customers,
        sum(gross_revenue) as gross_revenue,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin
    from orders
    group by order_date

),

customer_order_days as (

    select distinct
        customer_id,
        order_date
    from orders
    where customer_id is not null

),

activity_stretches as (

    -- A recognized order keeps its customer active on its day and the 89 days after (the 90 days
    -- ending on a day contain the order). Each stretch runs until the customer's next order day
    -- takes over, so a customer is counted at most once per day.
    select
        order_date as active_from,
        least(
            order_date + 90,
            coalesce(
                lead(order_date) over (partition by customer_id order by order_date),
                order_date + 90
            )
        ) as active_until
    from customer_order_days

),

activity_deltas as (

    -- +1 on a stretch's first day, -1 on its first day no longer active; a running sum gives the
    -- active customers of each day. Every calendar day is in the running sum (delta 0), and so
    -- are deltas on days outside the calendar (none in practice).
    select
        date_day,
        0 as delta
    from calendar

    union all

    select
        active_from as date_day,
        1 as delta
    from activity_stretches

    union all

    select
        active_until as date_day,
        -1 as delta
    from activity_stretches

),

activity_deltas_daily as (

    select
        date_day,
        sum(delta) as active_delta
    from activity_deltas
    group by date_day

),

active_customers_daily as (

    select
        date_day,
        sum(active_delta) over (
            order by date_day
            rows between unbounded preceding and current row
        ) as active_customers
    from activity_deltas_daily

),

tickets_created_daily as (

    select
        created_date as date_day,
        count(*) as tickets_created,
        -- undecided tickets (is_sla_breached null) count in neither
        sum(case when is_sla_breached = false then 1 else 0 end) as sla_met_tickets,
        sum(case when is_sla_breached is not null then 1 else 0 end) as sla_decided_tickets
    from tickets
    group by created_date

),

tickets_solved_daily as (

    select
        {{ to_business_date('solved_at') }} as date_day,
        count(*) as tickets_solved
    from tickets
    where solved_at is not null
    group by {{ to_business_date('solved_at') }}

),

ratings_daily as (

    select
        rated_date as date_day,
        sum(case when satisfaction = 'good' then 1 else 0 end) as csat_good_ratings,
        count(*) as csat_ratings
    from latest_ratings
    group by rated_date

),

support_cost_daily as (

    select
        logged_date as date_day,
        sum(cost) as support_cost
    from time_entries
    group by logged_date

),

final as (

    select
        calendar.date_day,
        calendar.week_start,
        calendar.month_start,
        cast(coalesce(ads_daily.spend, 0) as numeric(18, 2)) as spend,
        cast(coalesce(ads_daily.impressions, 0) as bigint) as impressions,
        cast(coalesce(ads_daily.clicks, 0) as bigint) as clicks,
        cast(coalesce(signups_daily.signups, 0) as bigint) as signups,
        cast(coalesce(orders_daily.new_customers, 0) as bigint) as new_customers,
        cast(coalesce(orders_daily.orders, 0) as bigint) as orders,
        cast(coalesce(orders_daily.gross_revenue, 0) as numeric(18, 2)) as gross_revenue,
        cast(coalesce(orders_daily.net_revenue, 0) as numeric(18, 2)) as net_revenue,
        cast(coalesce(orders_daily.gross_margin, 0) as numeric(18, 2)) as gross_margin,
        cast(active_customers_daily.active_customers as bigint) as active_customers,
        cast(coalesce(tickets_created_daily.tickets_created, 0) as bigint) as tickets_created,
        cast(coalesce(tickets_solved_daily.tickets_solved, 0) as bigint) as tickets_solved,
        cast(coalesce(tickets_status_daily.open_backlog, 0) as bigint) as open_backlog,
        cast(coalesce(tickets_created_daily.sla_met_tickets, 0) as bigint) as sla_met_tickets,
        cast(coalesce(tickets_created_daily.sla_decided_tickets, 0) as bigint)
            as sla_decided_tickets,
        cast(coalesce(ratings_daily.csat_good_ratings, 0) as bigint) as csat_good_ratings,
        cast(coalesce(ratings_daily.csat_ratings, 0) as bigint) as csat_ratings,
        cast(coalesce(support_cost_daily.support_cost, 0) as numeric(18, 2)) as support_cost
    from calendar
    inner join active_customers_daily
        on calendar.date_day = active_customers_daily.date_day
    left join ads_daily
        on calendar.date_day = ads_daily.date_day
    left join signups_daily
        on calendar.date_day = signups_daily.date_day
    left join orders_daily
        on calendar.date_day = orders_daily.date_day
    left join tickets_created_daily
        on calendar.date_day = tickets_created_daily.date_day
    left join tickets_solved_daily
        on calendar.date_day = tickets_solved_daily.date_day
    left join tickets_status_daily
        on calendar.date_day = tickets_status_daily.date_day
    left join ratings_daily
        on calendar.date_day = ratings_daily.date_day
    left join support_cost_daily
        on calendar.date_day = support_cost_daily.date_day

)

select * from final
