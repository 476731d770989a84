{#
    The SQL type of a field type of the source contract (src/ops_warehouse/pipeline/contracts.py).
    Staging casts every raw column with it, so each contract type has one warehouse type, and the
    later models cast to text, double and timestamp with it too: the same model SQL on every
    engine. DuckDB and PostgreSQL share one spelling; Spark has its own (no text, double
    precision or timestamp with time zone there):

        contract type     DuckDB / PostgreSQL            Spark
        text              text                           string
        int               bigint                         bigint
        decimal (money)   numeric(18, 2)                 decimal(18, 2)
        float             double precision               double
        date              date                           date
        timestamp         timestamp with time zone (UTC) timestamp (session time zone UTC)
        bool              boolean                        boolean

    dbt's own type macros are not used here: dbt.type_timestamp() is a timestamp without time zone
    and dbt.type_float() is a 4-byte float on DuckDB.

    Staging uses a plain cast (dbt.safe_cast is the same plain cast on these adapters): a value
    that does not parse fails the build instead of silently becoming null (on Spark with ANSI
    mode, which the spark profile turns on). The loaders quarantine such values before they reach
    raw, so a failure here means the contract itself changed.

    spark__cast: the columns' data_type in the models' yml files (contracts, unit tests) is
    written in the DuckDB / PostgreSQL spelling; dbt renders it through its cast() macro, which
    on Spark translates the three names Spark lacks (dbt_project.yml dispatches dbt's cast here).
#}
{% macro contract_type(field_type) -%}
    {%- set sql_types = adapter.dispatch("contract_sql_types")() -%}
    {%- if field_type not in sql_types -%}
        {{ exceptions.raise_compiler_error(
            "contract_type: unknown contract field type '" ~ field_type ~ "' in " ~ model.name
            ~ "; use one of: " ~ sql_types.keys() | join(", ")
        ) }}
    {%- endif -%}
    {{- sql_types[field_type] -}}
{%- endmacro %}

{% macro default__contract_sql_types() -%}
    {{- return({
        "text": "text",
        "int": "bigint",
        "decimal": "numeric(18, 2)",
        "float": "double precision",
        "date": "date",
        "timestamp": "timestamp with time zone",
        "bool": "boolean",
    }) -}}
{%- endmacro %}

{% macro spark__contract_sql_types() -%}
    {{- return({
        "text": "string",
        "int": "bigint",
        "decimal": "decimal(18, 2)",
        "float": "double",
        "date": "date",
        "timestamp": "timestamp",
        "bool": "boolean",
    }) -}}
{%- endmacro %}

{% macro spark__cast(field, type) -%}
    {%- set spark_spellings = {
        "text": "string",
        "double precision": "double",
        "timestamp with time zone": "timestamp",
    } -%}
    cast({{ field }} as {{ spark_spellings.get(type | trim | lower, type) }})
{%- endmacro %}
