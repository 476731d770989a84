{#
    date_series(start_date, end_date, datepart): the one date spine of the project, a table
    expression with one row per day (datepart 'day') or month ('month') from start_date to end_date,
    both included. Use it after `cross join lateral` (its bounds come from the table before it)
    and name its single column; the values are timestamps (without time zone on DuckDB and
    PostgreSQL; Spark's session zone is UTC), cast them to date:

        select cast(days.day_ts as date) as date_day
        from bounds
        cross join lateral
            {{ date_series('bounds.first_day', 'bounds.last_day', 'day') }} as days (day_ts)

    generate_series(timestamp, timestamp, interval) is the same on DuckDB and PostgreSQL; Spark
    has no generate_series and writes explode(sequence(...)), which needs the explicit lateral.
    The acquisition months (models/intermediate/marketing/int_acquisition_months.sql) are
    recursive on purpose instead (see there).
#}
{% macro date_series(start_date, end_date, datepart) -%}
    {%- if datepart not in ("day", "month") -%}
        {{ exceptions.raise_compiler_error(
            "date_series: datepart must be 'day' or 'month', not '" ~ datepart ~ "'"
        ) }}
    {%- endif -%}
    {{ return(adapter.dispatch("date_series")(start_date, end_date, datepart)) }}
{%- endmacro %}

{% macro default__date_series(start_date, end_date, datepart) -%}
    generate_series(
        cast({{ start_date }} as timestamp),
        cast({{ end_date }} as timestamp),
        interval '1 {{ datepart }}'
    )
{%- endmacro %}

{% macro spark__date_series(start_date, end_date, datepart) -%}
    explode(sequence(
        cast({{ start_date }} as timestamp),
        cast({{ end_date }} as timestamp),
        interval '1 {{ datepart }}'
    ))
{%- endmacro %}
