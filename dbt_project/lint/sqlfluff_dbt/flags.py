"""dbt's `flags` context variable, as SQLFluff sees it: the run's command-line flags. Linted as
an incremental run (no --full-refresh); the SQL differs between the two only in its values."""

FULL_REFRESH = False
