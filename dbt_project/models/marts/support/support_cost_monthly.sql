{#-
    One row per business month x support team, from the first month with a ticket or a time
    entry to the as-of month (docs/marts.md "support_cost_monthly"); a team-month without activity
    has zeros and NULL ratios.

    - tickets_solved: tickets whose solved_at (fct_tickets) falls in the month, credited to the
      team of the ticket's assignee (the helpdesk serves the current assignee and the agent's
      current team only); a solved ticket with no known assignee goes to team `unassigned`.
      The helpdesk has no "solved by": the assignee owns the ticket.
    - handle_hours, support_cost: time entries logged in the month by the team's agents
      (int_time_entries_costed: the agent's current team).
    - active_customers: customers with a recognized order in the 90 days ending on the month's
      last day (the as-of date for the as-of month). Company-wide, the same on every team's row.
      Taken from int_kpi_components_daily's count on that day, the number kpi_daily publishes for
      the day, rather than counted again from the orders (a range join of every month with 90
      days of orders).
-#}
with

tickets as (

    select
        ticket_id,
        assignee_id,
        created_date,
        solved_at
    from {{ ref('fct_tickets') }}

),

agents as (

    select
        agent_id,
        team
    from {{ ref('stg_support__agents') }}

),

time_entries_costed as (

    select
        team,
        logged_date,
        minutes,
        cost
    from {{ ref('int_time_entries_costed') }}

),

components_daily as (

    select
        date_day,
        active_customers
    from {{ ref('int_kpi_components_daily') }}

),

first_months as (

    -- the first month with support activity: a ticket created or time logged
    select
        cast({{ dbt.date_trunc('month', 'cast(min(activity_date) as timestamp)') }} as date)
            as first_month
    from (
        select created_date as activity_date from tickets
        union all
        select logged_date as activity_date from time_entries_costed
    ) as activity_dates

),

as_of_months as (

    select
        cast({{ dbt.date_trunc('month', 'cast(' ~ as_of_date() ~ ' as timestamp)') }} as date)
            as as_of_month

),

digits as (

    select digit
    from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) as digit_values (digit)

),

month_offsets as (

    -- 0 .. 999: enough for 83 years of tickets
    select ones.digit + 10 * tens.digit + 100 * hundreds.digit as month_offset
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds

),

months as (

    select
        cast(
            {{ dbt.dateadd('month', 'month_offsets.month_offset', 'first_months.first_month') }}
            as date
        ) as month_start
    from first_months
    cross join as_of_months
    cross join month_offsets
    where cast(
        {{ dbt.dateadd('month', 'month_offsets.month_offset', 'first_months.first_month') }}
        as date
    ) <= as_of_months.as_of_month

),

month_periods as (

    -- the day a month's point-in-time measures are taken: its last day, or the as-of date
    select
        months.month_start,
        case
            when months.month_start = as_of_months.as_of_month then {{ as_of_date() }}
            else cast(
                {{ dbt.dateadd('day', -1, dbt.dateadd('month', 1, 'months.month_start')) }} as date
            )
        end as period_end_date
    from months
    cross join as_of_months

),

solved_tickets as (

    select
        coalesce(agents.team, 'unassigned') as team,
        cast(
            {{ dbt.date_trunc(
                'month', 'cast(' ~ to_business_date('tickets.solved_at') ~ ' as timestamp)'
            ) }}
            as date
        ) as month_start,
        count(*) as tickets_solved
    from tickets
    left join agents
        on tickets.assignee_id = agents.agent_id
    where tickets.solved_at is not null
    group by 1, 2

),

team_work as (

    select
        team,
        cast({{ dbt.date_trunc('month', 'cast(logged_date as timestamp)') }} as date)
            as month_start,
        sum(minutes) as handle_minutes,
        sum(cost) as support_cost
    from time_entries_costed
    group by 1, 2

),

teams as (

    select team from solved_tickets
    union
    select team from team_work

),

active_customers as (

    -- the month's last day is in the calendar: it is on or after the first support activity,
    -- where dim_date begins at the latest, and at most the as-of date (were it missing, the
    -- column's NOT NULL constraint would fail the build rather than count 0)
    select
        month_periods.month_start,
        components_daily.active_customers
    from month_periods
    inner join components_daily
        on month_periods.period_end_date = components_daily.date_day

),

final as (

    select
        months.month_start,
        teams.team,
        cast(coalesce(solved_tickets.tickets_solved, 0) as bigint) as tickets_solved,
        cast(coalesce(team_work.handle_minutes, 0) as {{ contract_type('float') }}) / 60
            as handle_hours,
        cast(coalesce(team_work.support_cost, 0) as numeric(18, 2)) as support_cost,
        cast(coalesce(team_work.support_cost, 0) as {{ contract_type('float') }})
        / nullif(coalesce(solved_tickets.tickets_solved, 0), 0) as cost_per_ticket,
        cast(active_customers.active_customers as bigint) as active_customers,
        cast(coalesce(team_work.support_cost, 0) as {{ contract_type('float') }})
        / nullif(active_customers.active_customers, 0) as cost_per_active_customer
    from months
    cross join teams
    left join solved_tickets
        on
            months.month_start = solved_tickets.month_start
            and teams.team = solved_tickets.team
    left join team_work
        on
            months.month_start = team_work.month_start
            and teams.team = team_work.team
    left join active_customers
        on months.month_start = active_customers.month_start

)

select * from final
