{#
    The settings dbt writes into the models' SQL, as checked string literals.

    OPS_BUSINESS_TZ and OPS_REPORTING_CURRENCY reach dbt as vars and end up inside the SQL
    text (a time zone for `at time zone`, a currency code to compare with). The project's
    Settings refuse anything but an IANA zone name and an ISO 4217 code before a run starts;
    these macros check the shape again, so that a var given by hand (`dbt build --vars ...`)
    cannot turn into SQL either: a value such as USD' or '1'='1 stops the compilation with an
    error naming the var.

    business_tz_literal(): 'Area/Location' (letters, digits, _ + - and /).
    reporting_currency_literal(): 'USD' (three capital letters).
    checked_literal(value, pattern, what): 'value' when it matches the regular expression
    pattern, else a compilation error saying what it must be.
#}
{% macro business_tz_literal() -%}
    {{- checked_literal(
        var("business_tz"),
        "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
        "var business_tz (OPS_BUSINESS_TZ) must be an IANA time zone name such as Europe/Berlin",
    ) -}}
{%- endmacro %}

{% macro reporting_currency_literal() -%}
    {{- checked_literal(
        var("reporting_currency"),
        "^[A-Z]{3}$",
        "var reporting_currency (OPS_REPORTING_CURRENCY) must be an ISO 4217 code such as USD",
    ) -}}
{%- endmacro %}

{% macro checked_literal(value, pattern, what) -%}
    {%- if modules.re.match(pattern, value | string) is none -%}
        {{ exceptions.raise_compiler_error(what ~ ", not " ~ value) }}
    {%- endif -%}
    '{{ value }}'
{%- endmacro %}
