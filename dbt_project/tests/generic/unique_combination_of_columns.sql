{#
    Fails for every combination of the given columns that occurs on more than one row: the
    uniqueness test of a composite key (pair it with not_null on each of its columns).

        data_tests:
          - unique_combination_of_columns:
              arguments:
                combination_of_columns: [date_day, campaign_id]
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

    {%- if combination_of_columns | length < 2 -%}
        {{ exceptions.raise_compiler_error(
            "unique_combination_of_columns on " ~ model ~ " needs at least two columns; "
            ~ "for a single-column key use the built-in unique test"
        ) }}
    {%- endif -%}

    {%- set key_columns = combination_of_columns | join(",\n        ") %}

    select
        {{ key_columns }},
        count(*) as row_count
    from {{ model }}
    group by
        {{ key_columns }}
    having count(*) > 1

{% endtest %}
