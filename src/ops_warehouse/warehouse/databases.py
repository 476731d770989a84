"""Where the warehouse lives, for people and for PostgreSQL: names it for messages and creates
a missing PostgreSQL database, or says at once who must create it and how.

The working database (``OPS_POSTGRES_URL``) is checked at the start of every entry that
writes it (the ingest and transform tasks, ``ops load``, ``ops transform``, ``ops-demo``);
the published one (``OPS_PUBLISHED_POSTGRES_URL``) on first publish. A missing database is
created when the URL's user may create databases; otherwise the error names the setting and
the ``createdb`` command to run, and is raised before any retry could be wasted on it.
"""

from __future__ import annotations

from ops_warehouse.errors import OpsWarehouseError, PublishError
from ops_warehouse.settings import Settings

# Databases every PostgreSQL server has, to connect to while the target does not exist yet.
MAINTENANCE_DATABASES = ("postgres", "template1")
# Long enough for a server across a network; short enough that a wrong host fails fast
# instead of waiting for the operating system's TCP timeout (minutes).
CONNECT_TIMEOUT_S = 10


class DatabaseMissing(OpsWarehouseError):
    """A PostgreSQL database does not exist and its URL's user may not create it: no retry
    can help, someone has to create it (the message says how)."""


def display_url(url: str) -> str:
    """A database URL fit for logs and messages: the password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def working_location(settings: Settings) -> str:
    """The working warehouse as a person finds it: the DuckDB file or the PostgreSQL URL."""
    if settings.warehouse == "postgres":
        return f"{display_url(settings.postgres_url)} (PostgreSQL)"
    if settings.warehouse == "spark":
        return (
            f"{settings.warehouse_path} (landing) and the Spark Thrift server at "
            f"{_thrift(settings)} (models)"
        )
    return str(settings.warehouse_path)


def _thrift(settings: Settings) -> str:
    return f"{settings.spark_thrift_host}:{settings.spark_thrift_port}"


def published_location(settings: Settings) -> str:
    """The published warehouse readers open: the DuckDB file or the PostgreSQL URL."""
    if settings.warehouse == "postgres":
        return f"{display_url(settings.published_postgres_url)} (PostgreSQL)"
    if settings.warehouse == "spark":
        return f"database 'published' on the Spark Thrift server at {_thrift(settings)}"
    return str(settings.published_path)


def ensure_working_database(
    settings: Settings, *, error: type[Exception] = DatabaseMissing
) -> bool:
    """On PostgreSQL, create the working database if it is missing; True when created.

    ``error`` is what is raised when it is missing and may not be created. An Airflow task
    passes ``AirflowFailException``, which fails the task without retries; this module does
    not import Airflow itself, because the command line would pay seconds for the import."""
    if settings.warehouse != "postgres":
        return False  # DuckDB creates its file on first connect
    return ensure_database(settings.postgres_url, "OPS_POSTGRES_URL", error=error)


def ensure_published_database(settings: Settings) -> None:
    """Create the published database on first publish, or say who must create it and how."""
    ensure_database(
        settings.published_postgres_url, "OPS_PUBLISHED_POSTGRES_URL", error=PublishError
    )


def ensure_database(url: str, setting: str, *, error: type[Exception] = DatabaseMissing) -> bool:
    """Create the database ``url`` names, as its user and on its server, if it is missing;
    True when it was created.

    Raises ``error`` when it is missing and the user may not create it, and a (retryable)
    ``OpsWarehouseError`` when the server cannot be reached or refuses the user."""
    import psycopg
    from psycopg import errors, sql
    from sqlalchemy.engine import make_url

    from ops_warehouse.warehouse.engines import pg_connect

    try:
        pg_connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        return False
    except psycopg.OperationalError as exc:
        # The server's "database does not exist" carries no SQLSTATE at connect time: ask
        # the catalog instead of parsing the message.
        refused = exc
    target = make_url(url)
    name = target.database or ""
    maintenance = _maintenance_connection(url)
    if maintenance is None:
        raise OpsWarehouseError(
            f"cannot connect to the PostgreSQL database of {setting} ({display_url(url)}); "
            f"check that the server runs and the URL's host, port, user and password: {refused}"
        ) from refused
    with maintenance:
        if maintenance.execute("select 1 from pg_database where datname = %s", [name]).fetchone():
            raise OpsWarehouseError(
                f"the database {name!r} of {setting} ({display_url(url)}) exists but refused "
                "the connection; check the URL's user and password and that the user may "
                f"connect to it: {refused}"
            ) from refused
        try:
            maintenance.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            return False  # another process created it in the meantime
        except errors.InsufficientPrivilege as exc:
            user = target.username or "postgres"
            raise error(
                f"the database {name!r} named by {setting} ({display_url(url)}) does not exist "
                f"and user {user!r} may not create it. Create it as a user who may, e.g. "
                f"`createdb -h {target.host or '127.0.0.1'} -p {target.port or 5432} "
                f"-U postgres -O {user} {name}`, let the user create databases "
                f"(`alter role {user} createdb`), or point {setting} at an existing database"
            ) from exc
    return True


def _maintenance_connection(url: str):
    """An autocommit connection to a database that always exists, as the URL's user and on
    its server; None when neither can be reached."""
    import psycopg
    from sqlalchemy.engine import make_url

    from ops_warehouse.warehouse.engines import pg_connect

    for database in MAINTENANCE_DATABASES:
        try:
            return pg_connect(
                make_url(url).set(database=database).render_as_string(hide_password=False),
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
            )
        except psycopg.OperationalError:
            continue
    return None
