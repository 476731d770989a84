{#
    value_checks(): a mart's accepted_values and within_bounds tests, run by the mart's own build
    (a post-hook of every mart, dbt_project.yml; an incremental mart's after its own post-hooks,
    macros/incremental_staging.sql incremental_post_hooks), in one query, before the build
    commits.

    The tests stay declared where they are, on the marts' columns in the yml files; this macro
    reads them from dbt's graph (the tests attached to the model being built: their column,
    values or bounds, and their `where`), so the two can never disagree. A row that fails one
    fails the model: its error names the mart, the test and how many rows fail it, the build's
    transaction rolls back on DuckDB and PostgreSQL, and nothing is published. So an incremental
    day's selection (dbt_project/selectors.yml `daily`) leaves those tests out: each was a dbt
    node of its own, about 15-25 ms of dbt's work apiece, where this adds one query per mart.
    The weekly full build and CI still run every test.

    NULL passes, as in the tests (a NULL is not "outside" a set or a range).
#}
{% macro value_checks(after_model_hooks=false) %}
    {%- if not execute or model is not mapping or model.get("resource_type") != "model"
        or not model.get("original_file_path", "").startswith("models/marts/") -%}
        {{ return("") }}
    {%- endif -%}
    {#- an incremental mart runs it after its own post-hooks (the deletes of rows that no longer
        belong: incremental_post_hooks), not before them as dbt orders the project's hooks -#}
    {%- if model.config.get("materialized") == "incremental" and not after_model_hooks -%}
        {{ return("") }}
    {%- endif -%}
    {%- set checks = [] -%}
    {#- jinja's filters rather than a loop's condition: about 600 nodes per mart -#}
    {%- set attached = graph.nodes.values()
        | selectattr("resource_type", "equalto", "test")
        | selectattr("attached_node", "equalto", model.unique_id)
        | list -%}
    {%- for node in attached
        if (node.get("test_metadata") or {}).get("name") in ("accepted_values", "within_bounds")
    -%}
        {%- set kwargs = node.test_metadata.kwargs -%}
        {%- set column = kwargs.column_name -%}
        {%- if node.test_metadata.name == "accepted_values" -%}
            {%- set literals = [] -%}
            {%- for value in kwargs["values"] -%}
                {%- if kwargs.get("quote", true) -%}
                    {%- do literals.append("'" ~ dbt.escape_single_quotes(value | string) ~ "'") -%}
                {%- else -%}
                    {%- do literals.append(value | string) -%}
                {%- endif -%}
            {%- endfor -%}
            {%- set outside = column ~ " not in (" ~ literals | join(", ") ~ ")" -%}
        {%- else -%}
            {%- set bounds = [] -%}
            {%- if kwargs.get("min_value") is not none -%}
                {%- do bounds.append(column ~ " < " ~ kwargs.min_value) -%}
            {%- endif -%}
            {%- if kwargs.get("max_value") is not none -%}
                {%- do bounds.append(column ~ " > " ~ kwargs.max_value) -%}
            {%- endif -%}
            {%- set outside = "(" ~ bounds | join(" or ") ~ ")" -%}
        {%- endif -%}
        {%- set where = node.config.get("where") -%}
        {%- do checks.append(
            "select '" ~ node.name ~ "' as test_name, count(*) as failing_rows from " ~ this
            ~ " where " ~ column ~ " is not null and " ~ outside
            ~ (" and (" ~ where ~ ")" if where else "")
        ) -%}
    {%- endfor -%}
    {%- if checks -%}
        {%- set result = run_query(checks | join(" union all ")) -%}
        {%- set failed = [] -%}
        {%- for row in result.rows if row[1] > 0 -%}
            {%- do failed.append(row[0] ~ ": " ~ row[1] ~ " row(s)") -%}
        {%- endfor -%}
        {%- if failed -%}
            {#- Spark replaces its tables without a transaction: there the run stops before
                publish, but the working model keeps the failing rows -#}
            {{ exceptions.raise_compiler_error(
                "value checks of " ~ this ~ " failed ("
                ~ ("the run stops before publish" if target.type == "spark"
                   else "nothing of this build is kept") ~ "): "
                ~ failed | join("; ")
            ) }}
        {%- endif -%}
    {%- endif -%}
    {{ return("") }}
{% endmacro %}
