{#
    dbt.dateadd on Spark for hours, minutes and seconds. dbt-spark adds them to
    to_unix_timestamp(ts), whole seconds, and so drops a timestamp's fraction of a second;
    DuckDB and PostgreSQL keep it (fct_tickets' first_reply_due_at: created_at has microseconds).
    Spark's timestampadd() keeps them. Days, weeks, months and years go to dbt-spark's own macro.
    dbt_project.yml dispatches dbt's macros to this project first.
#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    {%- if datepart in ("hour", "minute", "second") -%}
        timestampadd({{ datepart }}, {{ interval }}, {{ from_date_or_timestamp }})
    {%- else -%}
        {{ dbt.spark__dateadd(datepart, interval, from_date_or_timestamp) }}
    {%- endif -%}
{%- endmacro %}
