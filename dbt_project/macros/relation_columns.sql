{#
    column_names_of(relation): a query with one row per column of a built relation, its name in
    lower case in column_name. Use it as a subquery:

        select column_name from ({{ column_names_of(ref('kpi_daily')) }}) as kpi_daily_columns

    DuckDB and PostgreSQL read information_schema.columns. Spark has no information_schema; there
    dbt's adapter lists the columns when the query is compiled to run, and the query is a union
    of literals.
#}
{% macro column_names_of(relation) -%}
    {{ return(adapter.dispatch("column_names_of")(relation)) }}
{%- endmacro %}

{% macro default__column_names_of(relation) -%}
    select lower(column_name) as column_name
    from information_schema.columns
    where
        table_schema = '{{ relation.schema }}'
        and table_name = '{{ relation.identifier }}'
{%- endmacro %}

{% macro spark__column_names_of(relation) -%}
    {%- set columns = adapter.get_columns_in_relation(relation) if execute else [] -%}
    {%- if execute and not columns -%}
        {{ exceptions.raise_compiler_error(
            "column_names_of: no columns found for " ~ relation ~ "; is it built?"
        ) }}
    {%- endif -%}
    {%- for column in columns %}
    select '{{ column.name | lower }}' as column_name
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
    {%- if not execute %}
    select cast(null as string) as column_name
    {%- endif %}
{%- endmacro %}
