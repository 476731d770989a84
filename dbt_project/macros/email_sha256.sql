{#
    The published key of an email address: the hex sha256 of lower(trim(email)), identical on
    DuckDB and PostgreSQL (docs/marts.md "Personal data"). NULL stays NULL.

        {{ email_sha256('email') }}

    DuckDB's sha256() takes text and returns hex; PostgreSQL's takes bytea and returns bytea, so
    each adapter gets its own implementation. lower() of non-ASCII letters follows the database's
    collation on PostgreSQL; the shop's addresses are ASCII.
#}
{% macro email_sha256(email) -%}
    {{ return(adapter.dispatch("email_sha256")(email)) }}
{%- endmacro %}

{% macro default__email_sha256(email) -%}
    encode(sha256(convert_to(lower(trim({{ email }})), 'UTF8')), 'hex')
{%- endmacro %}

{% macro duckdb__email_sha256(email) -%}
    sha256(lower(trim({{ email }})))
{%- endmacro %}
