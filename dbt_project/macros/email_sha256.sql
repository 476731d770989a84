{#
    The one normalisation of an email address and its published key (docs/marts.md "Personal data").

    normalize_email(email): the SQL expression lower(trim(email)), the form customers, signups and
    tickets are matched on. Staging stores it as email_normalized / requester_email_normalized.

        {{ normalize_email('email') }}

    email_sha256(email): the hex sha256 of normalize_email(email), identical on DuckDB,
    PostgreSQL and Spark. NULL stays NULL.

        {{ email_sha256('email') }}

    DuckDB's sha256() takes text and returns hex; PostgreSQL's takes bytea and returns bytea;
    Spark's sha2(value, 256) takes the string's UTF-8 bytes and returns hex. So each adapter gets
    its own implementation. lower() of non-ASCII letters follows the database's
    collation on PostgreSQL; the shop's addresses are ASCII.
#}
{% macro normalize_email(email) -%}
    lower(trim({{ email }}))
{%- endmacro %}

{% macro email_sha256(email) -%}
    {{ return(adapter.dispatch("email_sha256")(email)) }}
{%- endmacro %}

{% macro default__email_sha256(email) -%}
    encode(sha256(convert_to({{ normalize_email(email) }}, 'UTF8')), 'hex')
{%- endmacro %}

{% macro duckdb__email_sha256(email) -%}
    sha256({{ normalize_email(email) }})
{%- endmacro %}

{% macro spark__email_sha256(email) -%}
    sha2({{ normalize_email(email) }}, 256)
{%- endmacro %}
