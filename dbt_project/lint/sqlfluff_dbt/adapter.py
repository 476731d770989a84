"""`adapter.dispatch(name)(args)`: renders as a call of a SQL function of the macro's name."""


def dispatch(macro_name, macro_namespace=None):
    def render(*args):
        return f"{macro_name}({', '.join(str(arg) for arg in args)})"

    return render
