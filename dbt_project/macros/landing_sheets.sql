{#
    newest_sheet_rows(relation, key, columns): the rows of a landing sheet that count.

    docs/sources.md: the newest file of each kind wins for the months it covers. A month's rows all
    come from the newest file that has the month (files are named <kind>_<YYYY-MM-DD>.csv, so
    the greatest name is the newest); a row an older file has and the newest lacks is gone.
    Should the winning file's rows arrive twice, the latest load wins: one row per
    (month_start, key). `relation` needs month_start, _file_name and _loaded_at.
#}
{% macro newest_sheet_rows(relation, key, columns) -%}
    select
        {{ columns | join(",\n        ") }}
    from (
        select
            *,
            row_number() over (
                partition by month_start, {{ key }}
                order by _loaded_at desc nulls last
            ) as recency_rank
        from (
            select
                *,
                max(_file_name) over (partition by month_start) as newest_file_name
            from {{ relation }}
        ) as with_newest_file
        where _file_name = newest_file_name
    ) as ranked
    where recency_rank = 1
{%- endmacro %}
