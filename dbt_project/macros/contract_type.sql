{#
    The SQL type of a field type of the source contract (src/ops_warehouse/pipeline/contracts.py).
    Staging casts every raw column with it, so each contract type has one warehouse type, the same
    on DuckDB and PostgreSQL (both accept these names):

        text -> text                          float     -> double precision
        int  -> bigint                        date      -> date
        decimal (money) -> numeric(18, 2)     timestamp -> timestamp with time zone (UTC)
        bool -> boolean

    dbt's own type macros are not used here: dbt.type_timestamp() is a timestamp without time zone
    and dbt.type_float() is a 4-byte float on DuckDB.

    Staging uses a plain cast (dbt.safe_cast is the same plain cast on both adapters): a value
    that does not parse fails the build instead of silently becoming null. The loaders quarantine
    such values before they reach raw, so a failure here means the contract itself changed.
#}
{% macro contract_type(field_type) -%}
    {%- set sql_types = {
        "text": "text",
        "int": "bigint",
        "decimal": "numeric(18, 2)",
        "float": "double precision",
        "date": "date",
        "timestamp": "timestamp with time zone",
        "bool": "boolean",
    } -%}
    {%- if field_type not in sql_types -%}
        {{ exceptions.raise_compiler_error(
            "contract_type: unknown contract field type '" ~ field_type ~ "' in " ~ model.name
            ~ "; use one of: " ~ sql_types.keys() | join(", ")
        ) }}
    {%- endif -%}
    {{- sql_types[field_type] -}}
{%- endmacro %}
