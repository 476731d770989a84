{#
    value_checks(): a mart's accepted_values and within_bounds tests, run by the mart's own build
    (a post-hook of every mart, dbt_project.yml; an incremental mart's after its own post-hooks,
    macros/incremental_staging.sql incremental_post_hooks), in one query, before the build
    commits.

    The tests stay declared where they are, on the marts' columns in the yml files. This macro
    finds them in dbt's graph (the tests attached to the model being built) and runs each one's
    own SQL: dbt's accepted_values macro, as dispatched for the adapter, and the project's
    within_bounds (tests/generic/within_bounds.sql), called with the test's arguments, on the
    model filtered by the test's `where` as dbt filters it (get_where_subquery). The check is
    therefore the test itself, and counts failures as `dbt test` does: rows outside the bounds,
    distinct values outside the accepted set. A failure fails the model: its error names the
    mart, the test and its failure count, the build's transaction rolls back on DuckDB and
    PostgreSQL, and nothing is published. So an incremental day's selection
    (dbt_project/selectors.yml `daily`) leaves those tests out: each was a dbt node of its own,
    about 15-25 ms of dbt's work apiece, where this adds one query per mart. The weekly full
    build and CI still run every test.

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
        {#- the test's own arguments but `model`, which the test reads through its `where` -#}
        {%- set arguments = {} -%}
        {%- for name, value in node.test_metadata.kwargs.items() if name != "model" -%}
            {%- do arguments.update({name: value}) -%}
        {%- endfor -%}
        {#- what dbt's get_where_subquery gives a test with a `where` -#}
        {%- set where = node.config.get("where") -%}
        {%- set tested = "(select * from " ~ this ~ " where " ~ where ~ ") dbt_subquery"
            if where else this -%}
        {#- the test's own SQL: dbt's accepted_values (as dispatched for this adapter) or the
            project's within_bounds (tests/generic/within_bounds.sql) -#}
        {%- if node.test_metadata.name == "accepted_values" -%}
            {%- set test_sql = adapter.dispatch("test_accepted_values", "dbt")(
                model=tested, **arguments) -%}
        {%- else -%}
            {%- set test_sql = test_within_bounds(model=tested, **arguments) -%}
        {%- endif -%}
        {#- counted as dbt counts a test's failures -#}
        {%- do checks.append(
            "select '" ~ node.name ~ "' as test_name, count(*) as failures from ("
            ~ test_sql ~ ") as dbt_internal_test"
        ) -%}
    {%- endfor -%}
    {%- if checks -%}
        {%- set result = run_query(checks | join(" union all ")) -%}
        {%- set failed = [] -%}
        {%- for row in result.rows if row[1] > 0 -%}
            {%- do failed.append(row[0] ~ ": " ~ row[1] ~ " failure(s)") -%}
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
