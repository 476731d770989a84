{#
    Business calendar helpers, the same on DuckDB, PostgreSQL and Spark.

    as_of_date(): the last complete day the run covers. The pipeline passes it in the
    environment (OPS_AS_OF_DATE), read only when models execute: a new day then reuses dbt's
    partial parse instead of re-parsing the whole project, as a changed --vars value would.
    A var as_of_date (unit-test overrides, or `--vars` by hand) wins; a bare `dbt build`
    falls back to yesterday.
    to_business_date(ts): the calendar date of a UTC timestamp in the business time zone.
    iso_day_of_week(date): 1 (Monday) .. 7 (Sunday); DuckDB and PostgreSQL extract isodow,
    Spark dayofweek_iso.
    seconds_between(start_ts, end_ts): end_ts - start_ts in seconds, a double with the
    microseconds; DuckDB and PostgreSQL extract the epoch of the interval, Spark (which has no
    epoch of an interval) subtracts unix_micros().
    to_business_timestamp(ts): the wall-clock time of a UTC timestamp in the business zone.
    DuckDB and PostgreSQL write `ts at time zone 'Zone'`; Spark, whose timestamps are instants
    shown in the session time zone (UTC, set by the spark profile), from_utc_timestamp(ts, 'Zone').
#}
{% macro as_of_date() -%}
    {%- set as_of = var("as_of_date", none) -%}
    {%- if not as_of and execute -%}
        {%- set as_of = env_var("OPS_AS_OF_DATE", "") -%}
    {%- endif -%}
    {%- if as_of -%}
        cast({{ checked_literal(as_of, "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "var as_of_date (OPS_AS_OF_DATE) must be a date such as 2026-11-22") }} as date)
    {%- else -%}
        cast({{ dbt.dateadd("day", -1, "current_date") }} as date)
    {%- endif -%}
{%- endmacro %}

{% macro to_business_timestamp(ts) -%}
    {{ return(adapter.dispatch("to_business_timestamp")(ts)) }}
{%- endmacro %}

{% macro default__to_business_timestamp(ts) -%}
    ({{ ts }} at time zone {{ business_tz_literal() }})
{%- endmacro %}

{% macro spark__to_business_timestamp(ts) -%}
    from_utc_timestamp({{ ts }}, {{ business_tz_literal() }})
{%- endmacro %}

{% macro to_business_date(ts) -%}
    cast({{ to_business_timestamp(ts) }} as date)
{%- endmacro %}

{% macro iso_day_of_week(date) -%}
    {{ return(adapter.dispatch("iso_day_of_week")(date)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(date) -%}
    extract(isodow from {{ date }})
{%- endmacro %}

{% macro spark__iso_day_of_week(date) -%}
    extract(dayofweek_iso from {{ date }})
{%- endmacro %}

{% macro seconds_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch("seconds_between")(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__seconds_between(start_ts, end_ts) -%}
    cast(extract(epoch from ({{ end_ts }} - {{ start_ts }})) as double precision)
{%- endmacro %}

{% macro spark__seconds_between(start_ts, end_ts) -%}
    (cast(unix_micros({{ end_ts }}) - unix_micros({{ start_ts }}) as double) / 1000000)
{%- endmacro %}
