{#-
    One row per business day, from the day the first ticket was created to the as-of date: how
    many tickets end the day in each status, and the open backlog (new + open + pending). A
    ticket's status at the end of a day is its latest status change up to then (business zone);
    before its first change it is `new`. kpi_daily.open_backlog reads this model.

    Counting works on changes rather than on ticket x day rows: each stretch of days a ticket
    ends in one status adds 1 to that status on its first day and takes 1 away on the day after
    its last, and a running sum over the days gives the counts.
-#}
with

tickets as (

    select
        ticket_id,
        {{ to_business_date('created_at') }} as created_date
    from {{ ref('stg_support__tickets') }}
    where {{ to_business_date('created_at') }} <= {{ as_of_date() }}

),

ticket_events as (

    select
        event_id,
        ticket_id,
        created_at,
        new_status
    from {{ ref('stg_support__ticket_events') }}
    where event_type = 'status_change'
        and new_status is not null
        and {{ to_business_date('created_at') }} <= {{ as_of_date() }}

),

status_changes as (

    -- a change stamped before its ticket was created counts from the creation day
    select
        ticket_events.ticket_id,
        ticket_events.event_id,
        ticket_events.created_at,
        ticket_events.new_status,
        case
            when {{ to_business_date('ticket_events.created_at') }} < tickets.created_date
                then tickets.created_date
            else {{ to_business_date('ticket_events.created_at') }}
        end as status_date
    from ticket_events
    inner join tickets
        on ticket_events.ticket_id = tickets.ticket_id

),

day_end_statuses as (

    -- on a day with several changes the last one is the status the ticket ends the day with
    select
        ticket_id,
        status_date,
        new_status as ticket_status,
        row_number() over (
            partition by ticket_id, status_date
            order by created_at desc, event_id desc
        ) as recency_rank
    from status_changes

),

status_starts as (

    select
        ticket_id,
        created_date as valid_from,
        'new' as ticket_status,
        0 as start_priority
    from tickets

    union all

    select
        ticket_id,
        status_date as valid_from,
        ticket_status,
        1 as start_priority
    from day_end_statuses
    where recency_rank = 1

),

status_starts_deduplicated as (

    -- a change on the creation day wins over the `new` the ticket was born with
    select
        ticket_id,
        valid_from,
        ticket_status,
        row_number() over (
            partition by ticket_id, valid_from
            order by start_priority desc
        ) as start_rank
    from status_starts

),

status_periods as (

    select
        ticket_id,
        ticket_status,
        valid_from,
        -- first day the ticket no longer ends in this status (null: it still does)
        lead(valid_from) over (
            partition by ticket_id
            order by valid_from
        ) as valid_until
    from status_starts_deduplicated
    where start_rank = 1

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

    select 0 as digit union all select 1 union all select 2 union all select 3
    union all select 4 union all select 5 union all select 6 union all select 7
    union all select 8 union all select 9

),

day_offsets as (

    -- 0 .. 9999: enough for 27 years of tickets
    select
        ones.digit + 10 * tens.digit + 100 * hundreds.digit + 1000 * thousands.digit as day_offset
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands

),

date_spine as (

    select
        cast(first_days.first_date + day_offsets.day_offset as date) as date_day
    from (select min(created_date) as first_date from tickets) as first_days
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
