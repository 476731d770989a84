"""`target.type`: the engine a model is linted for. The models build on DuckDB, PostgreSQL and
Spark; where a model spells a step per engine (`{% if target.type == ... %}`), SQLFluff lints
every branch, so the value only picks which one is rendered first."""

type = "duckdb"  # noqa: A001 - dbt's name
