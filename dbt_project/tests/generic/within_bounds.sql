{#
    Fails for every row whose column lies outside [min_value, max_value] (bounds inclusive; leave
    one out for a one-sided check). NULL passes: pair with not_null where NULL is not allowed
    (a ratio whose denominator is 0 is NULL by convention).

        columns:
          - name: retention_rate
            data_tests:
              - within_bounds:
                  arguments:
                    min_value: 0
                    max_value: 1
#}
{% test within_bounds(model, column_name, min_value=none, max_value=none) %}

    {%- if min_value is none and max_value is none -%}
        {{ exceptions.raise_compiler_error(
            "within_bounds on " ~ model ~ "." ~ column_name ~ " needs min_value, max_value or both"
        ) }}
    {%- endif %}

    select {{ column_name }}
    from {{ model }}
    where
        {{ column_name }} is not null
        and (
            false
            {%- if min_value is not none %}
            or {{ column_name }} < {{ min_value }}
            {%- endif %}
            {%- if max_value is not none %}
            or {{ column_name }} > {{ max_value }}
            {%- endif %}
        )

{% endtest %}
