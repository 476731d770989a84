{#-
    One row per period of each grain (`day`, `week`, `month`) from the first day of dim_date to the
    as-of date: the KPIs of docs/marts.md "kpi_daily" over the whole period, and the components they
    are computed from. kpi_daily publishes the day rows, kpi_scorecard all of them; the formulas
    are written once, here.

    - Sums: Σ of the period's days (int_kpi_components_daily).
    - Ratios: recomputed from the summed components (never an average of daily ratios);
      denominator 0 -> NULL.
    - Medians: percentile_cont(0.5) over the period's underlying tickets, rounded to 6 decimals
      of a minute so that DuckDB and PostgreSQL give the same double.
    - active_customers, open_backlog: the value on the period's last day, or on the as-of date
      for the period in progress (period_end_date).
    - returning_customer_rate: ordering customers of the period (distinct) whose first recognized
      order was before the period / all ordering customers of the period; for a day, "before the
      period" is "on an earlier day" (docs/marts.md). A customer who first orders on Monday and
      again on Wednesday is returning on Wednesday but new in that week.
    Weeks are ISO weeks (Monday), months calendar months, in the business zone (dim_date). The
    first week and month may start before the first day of data; they cover the days there are.
-#}
with

components_daily as (

    select * from {{ ref('int_kpi_components_daily') }}

),

orders as (

    select
        customer_id,
        order_date
    from {{ ref('fct_orders') }}
    where
        is_recognized
        and customer_id is not null

),

tickets as (

    select
        created_date,
        first_reply_at,
        first_reply_minutes,
        solved_at,
        full_resolution_minutes
    from {{ ref('fct_tickets') }}

),

period_days as (

    -- each day belongs to one period of each grain
    select
        'day' as period_grain,
        date_day as period_start,
        date_day
    from components_daily

    union all

    select
        'week' as period_grain,
        week_start as period_start,
        date_day
    from components_daily

    union all

    select
        'month' as period_grain,
        month_start as period_start,
        date_day
    from components_daily

),

periods as (

    select
        period_grain,
        period_start,
        -- the period's last day, or the as-of date (the calendar ends there)
        max(date_day) as period_end_date,
        case period_grain
            when 'day' then period_start
            when 'week' then cast({{ dbt.dateadd('day', 6, 'period_start') }} as date)
            else cast({{ dbt.dateadd('day', -1, dbt.dateadd('month', 1, 'period_start')) }} as date)
        end as calendar_end_date
    from period_days
    group by
        period_grain,
        period_start

),

period_sums as (

    select
        period_days.period_grain,
        period_days.period_start,
        sum(components_daily.spend) as spend,
        sum(components_daily.impressions) as impressions,
        sum(components_daily.clicks) as clicks,
        sum(components_daily.signups) as signups,
        sum(components_daily.new_customers) as new_customers,
        sum(components_daily.orders) as orders,
        sum(components_daily.gross_revenue) as gross_revenue,
        sum(components_daily.net_revenue) as net_revenue,
        sum(components_daily.gross_margin) as gross_margin,
        sum(components_daily.tickets_created) as tickets_created,
        sum(components_daily.tickets_solved) as tickets_solved,
        sum(components_daily.sla_met_tickets) as sla_met_tickets,
        sum(components_daily.sla_decided_tickets) as sla_decided_tickets,
        sum(components_daily.csat_good_ratings) as csat_good_ratings,
        sum(components_daily.csat_ratings) as csat_ratings,
        sum(components_daily.support_cost) as support_cost
    from period_days
    inner join components_daily
        on period_days.date_day = components_daily.date_day
    group by
        period_days.period_grain,
        period_days.period_start

),

period_ends as (

    select
        periods.period_grain,
        periods.period_start,
        components_daily.active_customers,
        components_daily.open_backlog
    from periods
    inner join components_daily
        on periods.period_end_date = components_daily.date_day

),

orders_sequenced as (

    -- each recognized order with the date of the same customer's previous one (NULL for their
    -- first); orders of one day follow each other, so only the first of them can have an
    -- earlier previous date
    select
        customer_id,
        order_date,
        lag(order_date) over (
            partition by customer_id
            order by order_date
        ) as previous_order_date
    from orders

),

period_customers as (

    -- A customer counts once in a period: on their first order in it, the one whose previous
    -- order lies before the period's start (or that has none). They are returning when that
    -- previous order exists, i.e. their first order was before the period. Counting those
    -- orders needs no (period, customer) deduplication: at scale 10 the model's query took
    -- 0.54-0.63 s when it grouped 2.86 M period-order rows into 2.5 M distinct pairs and
    -- joined them with each customer's first order, 0.21-0.23 s this way, the same counts.
    select
        period_days.period_grain,
        period_days.period_start,
        count(*) as ordering_customers,
        count(orders_sequenced.previous_order_date) as returning_customers
    from orders_sequenced
    inner join period_days
        on orders_sequenced.order_date = period_days.date_day
    where
        orders_sequenced.previous_order_date is null
        or orders_sequenced.previous_order_date < period_days.period_start
    group by
        period_days.period_grain,
        period_days.period_start

),

first_reply_medians as (

    -- tickets created in the period that have a first reply
    select
        period_days.period_grain,
        period_days.period_start,
        -- rounded to 6 decimals (0.06 ms): the last bit of percentile_cont's interpolation
        -- differs between DuckDB and PostgreSQL
        cast(
            percentile_cont(0.5) within group (order by tickets.first_reply_minutes)
            as numeric(18, 6)
        ) as median_first_reply_minutes
    from tickets
    inner join period_days
        on tickets.created_date = period_days.date_day
    where tickets.first_reply_at is not null
    group by
        period_days.period_grain,
        period_days.period_start

),

resolution_medians as (

    -- tickets solved in the period
    select
        period_days.period_grain,
        period_days.period_start,
        -- rounded to 6 decimals (0.06 ms): the last bit of percentile_cont's interpolation
        -- differs between DuckDB and PostgreSQL
        cast(
            percentile_cont(0.5) within group (order by tickets.full_resolution_minutes)
            as numeric(18, 6)
        ) as median_full_resolution_minutes
    from tickets
    inner join period_days
        on {{ to_business_date('tickets.solved_at') }} = period_days.date_day
    where tickets.solved_at is not null
    group by
        period_days.period_grain,
        period_days.period_start

),

components as (

    select
        periods.period_grain,
        periods.period_start,
        periods.period_end_date,
        cast(
            {{ dbt.datediff('periods.period_start', 'periods.period_end_date', 'day') }} + 1
            as bigint
        ) as elapsed_days,
        cast(
            {{ dbt.datediff('periods.period_start', 'periods.calendar_end_date', 'day') }} + 1
            as bigint
        ) as calendar_days,
        cast(period_sums.spend as numeric(18, 2)) as spend,
        cast(period_sums.impressions as bigint) as impressions,
        cast(period_sums.clicks as bigint) as clicks,
        cast(period_sums.signups as bigint) as signups,
        cast(period_sums.new_customers as bigint) as new_customers,
        cast(period_sums.orders as bigint) as orders,
        cast(period_sums.gross_revenue as numeric(18, 2)) as gross_revenue,
        cast(period_sums.net_revenue as numeric(18, 2)) as net_revenue,
        cast(period_sums.gross_margin as numeric(18, 2)) as gross_margin,
        period_ends.active_customers,
        cast(coalesce(period_customers.ordering_customers, 0) as bigint) as ordering_customers,
        cast(coalesce(period_customers.returning_customers, 0) as bigint) as returning_customers,
        cast(period_sums.tickets_created as bigint) as tickets_created,
        cast(period_sums.tickets_solved as bigint) as tickets_solved,
        period_ends.open_backlog,
        cast(first_reply_medians.median_first_reply_minutes as {{ contract_type('float') }})
            as median_first_reply_minutes,
        cast(resolution_medians.median_full_resolution_minutes as {{ contract_type('float') }})
            as median_full_resolution_minutes,
        cast(period_sums.sla_met_tickets as bigint) as sla_met_tickets,
        cast(period_sums.sla_decided_tickets as bigint) as sla_decided_tickets,
        cast(period_sums.csat_good_ratings as bigint) as csat_good_ratings,
        cast(period_sums.csat_ratings as bigint) as csat_ratings,
        cast(period_sums.support_cost as numeric(18, 2)) as support_cost
    from periods
    inner join period_sums
        on
            periods.period_grain = period_sums.period_grain
            and periods.period_start = period_sums.period_start
    inner join period_ends
        on
            periods.period_grain = period_ends.period_grain
            and periods.period_start = period_ends.period_start
    left join period_customers
        on
            periods.period_grain = period_customers.period_grain
            and periods.period_start = period_customers.period_start
    left join first_reply_medians
        on
            periods.period_grain = first_reply_medians.period_grain
            and periods.period_start = first_reply_medians.period_start
    left join resolution_medians
        on
            periods.period_grain = resolution_medians.period_grain
            and periods.period_start = resolution_medians.period_start

),

final as (

    -- ratios in double precision from exact sums, the same on DuckDB and PostgreSQL
    select
        period_grain,
        period_start,
        period_end_date,
        elapsed_days,
        calendar_days,
        spend,
        impressions,
        clicks,
        cast(clicks as {{ contract_type('float') }}) / nullif(impressions, 0) as ctr,
        cast(spend as {{ contract_type('float') }}) / nullif(clicks, 0) as cpc,
        cast(spend as {{ contract_type('float') }}) / nullif(impressions, 0) * 1000 as cpm,
        signups,
        new_customers,
        cast(spend as {{ contract_type('float') }}) / nullif(new_customers, 0) as blended_cac,
        orders,
        gross_revenue,
        net_revenue,
        gross_margin,
        cast(gross_margin as {{ contract_type('float') }})
        / nullif(cast(net_revenue as {{ contract_type('float') }}), 0) as gross_margin_pct,
        cast(gross_revenue as {{ contract_type('float') }}) / nullif(orders, 0) as aov,
        active_customers,
        cast(returning_customers as {{ contract_type('float') }})
        / nullif(ordering_customers, 0) as returning_customer_rate,
        tickets_created,
        tickets_solved,
        open_backlog,
        median_first_reply_minutes,
        median_full_resolution_minutes,
        cast(sla_met_tickets as {{ contract_type('float') }})
        / nullif(sla_decided_tickets, 0) as sla_attainment,
        cast(csat_good_ratings as {{ contract_type('float') }}) / nullif(csat_ratings, 0) as csat,
        support_cost,
        cast(support_cost as {{ contract_type('float') }})
        / nullif(tickets_solved, 0) as cost_per_ticket,
        cast(tickets_created as {{ contract_type('float') }})
        / nullif(active_customers, 0) * 100 as tickets_per_100_active,
        ordering_customers,
        returning_customers,
        sla_met_tickets,
        sla_decided_tickets,
        csat_good_ratings,
        csat_ratings
    from components

)

select * from final
