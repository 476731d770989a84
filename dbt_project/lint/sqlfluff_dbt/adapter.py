"""`adapter.dispatch(name)(args)`: the project's `default__<name>` macro, as dbt would pick it
for an engine without an implementation of its own; the models are linted in that (DuckDB /
PostgreSQL) spelling. A name without a default__ macro here (one of dbt's) renders as a call of
a SQL function of that name."""

from jinja2 import pass_context


@pass_context
def dispatch(context, macro_name, macro_namespace=None):
    default = context.get(f"default__{macro_name}")
    if default is not None:
        return default

    def render(*args):
        return f"{macro_name}({', '.join(str(arg) for arg in args)})"

    return render
