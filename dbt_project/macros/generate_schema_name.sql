{#
    Use a model's custom schema name as written (staging, intermediate, marts, seeds) instead of
    dbt's default "<target schema>_<custom schema>". Each target is its own database (a DuckDB file
    or a PostgreSQL database), so environments never share a schema and need no prefix.
    Nodes without a custom schema go to the target's schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
