"""Errors a data engineer can act on: each names the source, entity, field or setting involved.

Every error is classified once, here: ``permanent`` errors (bad data, a rejected token, a
changed schema, a failing model or test) come back the same on every attempt, so the task
fails at once without Airflow's retries (``airflow.tasks.fails_fast``); the others (a timeout,
a 5xx, a 429, a lock) are transient and retried. An exception that is not ours counts as
transient: retrying an unknown failure is the safer guess.
"""

# Words of a failure message that mark it as transient whatever raised it: locks held by
# another process, connections refused or dropped, timeouts, a process killed from outside.
TRANSIENT_SIGNS = (
    "could not set lock",
    "conflicting lock",
    "lock timeout",
    "deadlock detected",
    "could not obtain lock",
    "could not connect",
    "connection refused",
    "connection reset",
    "server closed the connection",
    "terminating connection",
    "too many connections",
    "timeout expired",
    "timed out",
    "out of memory",
    "killed by signal",
)


def looks_transient(message: str) -> bool:
    """Whether a failure message (a child process's, a driver's) names a transient cause."""
    lowered = message.lower()
    return any(sign in lowered for sign in TRANSIENT_SIGNS)


class OpsWarehouseError(Exception):
    """Base class of every error the pipeline raises on purpose."""

    # True: retrying cannot help, the task fails at once (see the module's docstring).
    permanent: bool = False


class SourceConfigError(OpsWarehouseError):
    """A source rejected our configuration (wrong token, bad URL): retrying cannot help."""

    permanent = True


class SourceSchemaError(OpsWarehouseError):
    """A source stopped serving a field the contract requires (missing or renamed), or served
    a field name the warehouse cannot keep as it is."""

    permanent = True


class SourceDataError(OpsWarehouseError):
    """A source served something that cannot be read at all: a file that is not UTF-8 CSV or
    breaks its limits, an API page that is not the JSON the contract describes."""

    permanent = True


class SourceUnavailableError(OpsWarehouseError):
    """A source could not be reached even after retries."""


class PublishError(OpsWarehouseError):
    """The working warehouse cannot be published (nothing was changed for readers)."""


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying ``exc`` cannot help (its class's or its own ``permanent``)."""
    return bool(getattr(exc, "permanent", False))
