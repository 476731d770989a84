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
        created_at
    from {{ ref('stg_support__tickets') }}
    where {{ to_business_date('created_at') }} <= {{ as_of_date() }}

),

status_changes as (

    select
        ticket_id,
        event_id,
        created_at,
        new_status
    from {{ ref('stg_support__ticket_events') }}
    where
        event_type = 'status_change'
        and new_status is not null
        and {{ to_business_date('created_at') }} <= {{ as_of_date() }}

),

status_starts as (

    -- a ticket is `new` from its creation, then takes each status change's new_status
    select
        ticket_id,
        created_at as started_at,
        cast(null as bigint) as event_id,
        'new' as ticket_status,
        0 as is_change
    from tickets

    union all

    select
        ticket_id,
        created_at as started_at,
        event_id,
        new_status as ticket_status,
        1 as is_change
    from status_changes

),

status_starts_clamped as (

    -- each start dated in the business zone; a change stamped before its ticket was created
    -- counts from the creation day. The events of a ticket that is not in tickets (orphans,
    -- or created after the as-of date) drop out.
    select
        status_starts.ticket_id,
        status_starts.started_at,
        status_starts.event_id,
        status_starts.ticket_status,
        status_starts.is_change,
        case
            when
                {{ to_business_date('status_starts.started_at') }}
                < {{ to_business_date('tickets.created_at') }}
                then {{ to_business_date('tickets.created_at') }}
            else {{ to_business_date('status_starts.started_at') }}
        end as valid_from
    from status_starts
    inner join tickets
        on status_starts.ticket_id = tickets.ticket_id

),

day_end_statuses as (

    -- the status a ticket ends each day with: the day's last change, else `new` on its
    -- creation day
    select
        ticket_id,
        ticket_status,
        valid_from,
        row_number() over (
            partition by ticket_id, valid_from
            order by is_change desc, started_at desc, event_id desc
        ) as day_rank
    from status_starts_clamped

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
    from day_end_statuses
    where day_rank = 1

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

    select cast(first_days.first_date + day_offsets.day_offset as date) as date_day
    from (
        select min({{ to_business_date('created_at') }}) as first_date from tickets
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
