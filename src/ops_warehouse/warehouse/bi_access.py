"""Read-only BI access to the published PostgreSQL warehouse: the ``bi_reader`` role.

BI tools (Metabase, Superset, DBeaver, notebooks) connect to the published database
(``OPS_PUBLISHED_POSTGRES_URL``) as ``bi_reader``: it may log in, connect to that database
and SELECT every table of ``marts``, and nothing else. It gets no privilege on ``audit``
(quarantine payloads), on the working database's raw, staging and intermediate schemas, and
no right to write, create objects or temporary tables.

The role is cluster-wide; ``ops bi-reader`` creates or refreshes it (and its password,
``OPS_BI_READER_PASSWORD``; empty means no password, for trust or peer authentication on a
local server). Each publish replaces ``marts`` by a new schema, so publish grants on the new
schema inside the swap transaction (``grant_on_schema``): readers never see a ``marts``
they may not read. Default privileges on the new schema cover tables created there later.

The password is sent as a SCRAM-SHA-256 verifier computed here (``scram_sha_256_verifier``),
never in clear: PostgreSQL stores a verifier given to CREATE/ALTER ROLE as it is, so the
password itself is not in the statement the server may log (``log_statement``, or any failed
statement), nor in ``pg_stat_activity``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import stringprep
import unicodedata
from dataclasses import dataclass

from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.pipeline.transform import MARTS
from ops_warehouse.settings import Settings
from ops_warehouse.warehouse.databases import ensure_published_database

log = logging.getLogger(__name__)

BI_READER_ROLE = "bi_reader"
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# as PostgreSQL's own verifiers: its default scram_iterations and salt length
SCRAM_ITERATIONS = 4096
SCRAM_SALT_BYTES = 16


class BiAccessError(OpsWarehouseError):
    """The read-only role could not be set up (the message says what to fix)."""


@dataclass(frozen=True)
class BiReaderStatus:
    role: str
    created: bool
    database: str
    tables: tuple[str, ...]


def check_role_name(role: str) -> str:
    if not _ROLE_NAME.match(role):
        raise BiAccessError(
            f"{role!r} is not a usable role name: use lowercase letters, digits and '_' "
            "(at most 63 characters, not starting with a digit)"
        )
    return role


def role_exists(con, role: str) -> bool:
    return con.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone() is not None


def ensure_role(con, role: str, password: str) -> bool:
    """Create the role, or reset its attributes and password; True when it was created.

    ``con`` is an autocommit connection of a user allowed to create roles."""
    from psycopg import errors, sql

    check_role_name(role)
    created = not role_exists(con, role)
    attributes = sql.SQL(
        "login nosuperuser nocreatedb nocreaterole noinherit noreplication nobypassrls"
    )
    secret = sql.Literal(scram_sha_256_verifier(password)) if password else sql.SQL("null")
    statement = sql.SQL(
        "create role {} with {} password {}" if created else "alter role {} with {} password {}"
    )
    try:
        con.execute(statement.format(sql.Identifier(role), attributes, secret))
    except errors.InsufficientPrivilege as exc:
        raise BiAccessError(
            f"cannot create or alter role {role!r}: the user of OPS_POSTGRES_URL needs the "
            "CREATEROLE privilege (or ask a database administrator to run `ops bi-reader`)"
        ) from exc
    return created


def scram_sha_256_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """The password as PostgreSQL stores it for SCRAM-SHA-256 authentication (RFC 5802 and
    7677): ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, base64, with a
    random salt unless one is given."""
    salt = os.urandom(SCRAM_SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password).encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    salt_b64, stored_b64, server_b64 = (
        base64.b64encode(part).decode() for part in (salt, stored_key, server_key)
    )
    return f"SCRAM-SHA-256${iterations}:{salt_b64}${stored_b64}:{server_b64}"


_SASLPREP_PROHIBITED = (
    stringprep.in_table_a1,  # unassigned code points
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def _saslprep(password: str) -> str:
    """The password as PostgreSQL (and libpq, logging in) hashes it: SASLprep (RFC 4013) the
    way PostgreSQL's pg_saslprep applies it. ASCII stays as it is; otherwise spaces are
    mapped, ignorable characters dropped and the result NFKC-normalized, unless a prohibited
    character or mixed-direction text refuses it, and then the password is used as given."""
    if password.isascii():
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c)
    )
    # PostgreSQL checks the mapped characters (before normalization), as here
    if not mapped or any(check(c) for c in mapped for check in _SASLPREP_PROHIBITED):
        return password
    if any(stringprep.in_table_d1(c) for c in mapped) and (
        any(stringprep.in_table_d2(c) for c in mapped)
        or not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1]))
    ):
        return password
    return unicodedata.normalize("NFKC", mapped)


def grant_on_schema(con, schema: str, role: str = BI_READER_ROLE) -> bool:
    """Let ``role`` read every table of ``schema`` (and tables created there later).

    Runs in the caller's transaction (publish: on ``marts_next``, just before the swap).
    Returns False, and grants nothing, when the role does not exist."""
    from psycopg import sql

    check_role_name(role)
    if not role_exists(con, role):
        log.info("no role %r: BI access not granted (create it with `ops bi-reader`)", role)
        return False
    harden_database(con, role)
    ident, target = sql.Identifier(role), sql.Identifier(schema)
    for statement in (
        "grant usage on schema {schema} to {role}",
        "grant select on all tables in schema {schema} to {role}",
        "alter default privileges in schema {schema} grant select on tables to {role}",
    ):
        con.execute(sql.SQL(statement).format(schema=target, role=ident))
    return True


def harden_database(con, role: str) -> None:
    """On the published database: ``role`` may connect; PUBLIC may not create objects in
    schema public nor temporary tables (PostgreSQL < 15 lets every role create in public)."""
    from psycopg import sql

    database = sql.Identifier(con.execute("select current_database()").fetchone()[0])
    for statement in (
        "revoke create on schema public from public",
        "revoke temporary on database {db} from public",
        "grant connect on database {db} to {role}",
    ):
        con.execute(sql.SQL(statement).format(db=database, role=sql.Identifier(role)))


def setup_bi_reader(settings: Settings, role: str = BI_READER_ROLE) -> BiReaderStatus:
    """`ops bi-reader`: create or refresh the role and its grants on the published database."""
    from sqlalchemy.engine import make_url

    from ops_warehouse.warehouse.engines import pg_connect

    if settings.warehouse != "postgres":
        raise BiAccessError(
            "OPS_WAREHOUSE is 'duckdb': BI tools open the published file read-only "
            f"({settings.published_path}); the bi_reader role exists only on PostgreSQL "
            "(set OPS_WAREHOUSE=postgres)"
        )
    check_role_name(role)
    with pg_connect(settings.postgres_url, autocommit=True) as con:
        created = ensure_role(con, role, settings.bi_reader_password)
    ensure_published_database(settings)
    with pg_connect(settings.published_postgres_url) as con, con.transaction():
        harden_database(con, role)  # also when there is no marts yet
        tables: tuple[str, ...] = ()
        if con.execute("select 1 from pg_namespace where nspname = %s", [MARTS]).fetchone():
            grant_on_schema(con, MARTS, role)
            tables = tuple(
                r[0]
                for r in con.execute(
                    "select tablename from pg_tables where schemaname = %s order by tablename",
                    [MARTS],
                ).fetchall()
            )
    database = make_url(settings.published_postgres_url).database or ""
    return BiReaderStatus(role=role, created=created, database=database, tables=tables)
