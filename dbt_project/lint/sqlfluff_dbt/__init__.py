"""Stand-ins for the dbt objects SQLFluff's jinja templater does not have; for linting only.

SQLFluff's dbt builtins (`apply_dbt_builtins` in .sqlfluff) cover ref, source, config, var,
is_incremental and this. .sqlfluff also loads this package as a jinja library, so each module
here is a name in the templates: `dbt` (dbt's cross-database macros, `dbt.dateadd(...)`),
`adapter` (`adapter.dispatch(...)`), `modules` and `exceptions` (`modules.re`,
`exceptions.raise_compiler_error`), `flags` (`flags.FULL_REFRESH`). They render SQL of the shape dbt writes, which SQLFluff
parses; dbt never imports them. A model calling a `dbt.*` macro not in dbt.py fails `make lint`
with a templating error (TMP): add the macro there.
"""
