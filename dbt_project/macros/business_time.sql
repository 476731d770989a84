{#
    Business calendar helpers, the same on DuckDB and PostgreSQL.

    as_of_date(): the last complete day the run covers. The pipeline passes it in the
    environment (OPS_AS_OF_DATE), read only when models execute: a new day then reuses dbt's
    partial parse instead of re-parsing the whole project, as a changed --vars value would.
    A var as_of_date (unit-test overrides, or `--vars` by hand) wins; a bare `dbt build`
    falls back to yesterday.
    to_business_date(ts): the calendar date of a UTC timestamp in the business time zone.
    to_business_timestamp(ts): the wall-clock time of a UTC timestamp in the business zone.
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
    ({{ ts }} at time zone {{ business_tz_literal() }})
{%- endmacro %}

{% macro to_business_date(ts) -%}
    cast({{ to_business_timestamp(ts) }} as date)
{%- endmacro %}
