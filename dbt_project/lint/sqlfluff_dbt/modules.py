"""dbt's `modules` context variable (the Python modules a macro may use), as SQLFluff sees it:
macros/setting_literals.sql checks a setting's shape with `modules.re`."""

import re

__all__ = ["re"]
