{#-
    One row per business day, from the day the first ticket was created to the as-of date: how
    many tickets end the day in each status, and the open backlog (new + open + pending). A
    ticket's status at the end of a day is its latest status change up to then (business zone);
    before its first change it is `new`. kpi_daily.open_backlog reads this model.

    Counting works on changes rather than on ticket x day rows: each stretch of days a ticket
    ends in one status (int_tickets_status_periods, incremental by ticket) adds 1 to that status
    on its first day and takes 1 away on the day after its last, and a running sum over the days
    gives the counts. Only this sum reads every ticket's stretches on an incremental day.
-#}
with

status_periods as (

    select
        ticket_status,
        valid_from,
        valid_until
    from {{ ref('int_tickets_status_periods') }}

),

status_deltas as (

    select
        valid_from as date_day,
        ticket_status,
        1 as delta
    from status_periods

    union all

    select
        valid_until as date_day,
        ticket_status,
        -1 as delta
    from status_periods
    where valid_until is not null

),

daily_deltas as (

    select
        date_day,
        sum(case when ticket_status = 'new' then delta else 0 end) as new_delta,
        sum(case when ticket_status = 'open' then delta else 0 end) as open_delta,
        sum(case when ticket_status = 'pending' then delta else 0 end) as pending_delta,
        sum(case when ticket_status = 'solved' then delta else 0 end) as solved_delta,
        sum(case when ticket_status = 'closed' then delta else 0 end) as closed_delta
    from status_deltas
    group by date_day

),

digits as (

    select digit
    from (values (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) as digit_values (digit)

),

day_offsets as (

    -- 0 .. 9999: enough for 27 years of tickets
    select
        ones.digit
        + 10 * tens.digit
        + 100 * hundreds.digit
        + 1000 * thousands.digit as day_offset
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands

),

date_spine as (

    -- from the first ticket's creation day: its first stretch starts there
    select cast(first_days.first_date + day_offsets.day_offset as date) as date_day
    from (
        select min(valid_from) as first_date from status_periods
    ) as first_days
    cross join day_offsets
    where first_days.first_date + day_offsets.day_offset <= {{ as_of_date() }}

),

final as (

    select
        date_spine.date_day,
        cast(sum(coalesce(daily_deltas.new_delta, 0)) over (
            order by date_spine.date_day rows between unbounded preceding and current row
        ) as bigint) as tickets_status_new,
        cast(sum(coalesce(daily_deltas.open_delta, 0)) over (
            order by date_spine.date_day rows between unbounded preceding and current row
        ) as bigint) as tickets_status_open,
        cast(sum(coalesce(daily_deltas.pending_delta, 0)) over (
            order by date_spine.date_day rows between unbounded preceding and current row
        ) as bigint) as tickets_status_pending,
        cast(sum(coalesce(daily_deltas.solved_delta, 0)) over (
            order by date_spine.date_day rows between unbounded preceding and current row
        ) as bigint) as tickets_status_solved,
        cast(sum(coalesce(daily_deltas.closed_delta, 0)) over (
            order by date_spine.date_day rows between unbounded preceding and current row
        ) as bigint) as tickets_status_closed,
        cast(sum(
            coalesce(daily_deltas.new_delta, 0)
            + coalesce(daily_deltas.open_delta, 0)
            + coalesce(daily_deltas.pending_delta, 0)
        ) over (
            order by date_spine.date_day rows between unbounded preceding and current row
        ) as bigint) as open_backlog
    from date_spine
    left join daily_deltas
        on date_spine.date_day = daily_deltas.date_day

)

select * from final
