"""Secrets never leave the settings: a secret planted in every setting that can hold one (URL
user info and passwords, query parameters, API tokens, the webhook URL, the BI password, the
SMTP connection's password) is found in none of what the pipeline writes for people: logs,
stdout and stderr, the working and the published audit trail, alerts (email and webhook), the
report delivery record, `ops settings`, the Airflow task log, and the PostgreSQL server log
with ``log_statement=all``.

Every secret is random per test and has a marker prefix, so that a leak is found whatever
shape it takes and whichever test planted it. Each test also checks that the failure it
provokes was recorded and alerted (the text around the secret is still there): a run that
leaks nothing because it wrote nothing would prove nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
import smtplib
import subprocess
import sys
import textwrap
import uuid
from email.message import EmailMessage
from urllib.parse import quote

import duckdb
import psycopg
import pytest
from rich.console import Console

from ops_warehouse import cli
from ops_warehouse import settings as settings_module
from ops_warehouse.airflow import tasks
from ops_warehouse.airflow.environment import airflow_env
from ops_warehouse.pipeline import audit
from ops_warehouse.reports import delivery
from ops_warehouse.settings import PROJECT_ROOT, Settings
from ops_warehouse.warehouse import bi_access, publish
from ops_warehouse.warehouse.bi_access import BiAccessError, ensure_role, scram_sha_256_verifier
from tests.conftest import MARTS_UNTIL, drop_pg_database, scratch_pg_database
from tests.helpers import day_window
from tests.quality.wap import (  # noqa: F401 (fixed_data_docs is a fixture)
    SmtpSink,
    WebhookSink,
    airflow_context,
    fixed_data_docs,
    message_text,
    run,
    working_copy,
)

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MARKER = "SeKr1t"


def secret(name: str) -> str:
    """A fresh secret, URL-safe, recognisable by its marker."""
    return f"{MARKER}{name}{secrets.token_hex(6)}"


def leaks(text: str, planted: dict[str, str]) -> list[str]:
    """The planted secrets found in ``text`` (as they are or URL-encoded), by name."""
    return [
        name
        for name, value in planted.items()
        if value in text or quote(value, safe="") in text or value[len(MARKER) :] in text
    ]


def leaking_lines(text: str, planted: dict[str, str]) -> str:
    """The lines of ``text`` that hold a planted secret (for a failing test's message)."""
    return "\n".join(line for line in text.splitlines() if leaks(line, planted))


def planted_env(port: int, planted: dict[str, str]) -> dict[str, str]:
    """Every setting that can hold a secret, with one planted (the APIs on a local port)."""
    api = f"127.0.0.1:{port}"
    return {
        "OPS_MARKETING_API_URL": f"http://mkt-user:{planted['marketing_url']}@{api}",
        "OPS_MARKETING_API_TOKEN": planted["marketing_token"],
        "OPS_SUPPORT_API_URL": f"http://{planted['support_url']}@{api}",  # token-only user info
        "OPS_SUPPORT_API_TOKEN": planted["support_token"],
        "OPS_SHOP_API_URL": f"http://{api}/admin?access_token={planted['shop_url']}&v=1",
        "OPS_SHOP_API_TOKEN": planted["shop_token"],
        "OPS_POSTGRES_URL": (
            f"postgresql://postgres:{planted['pg_password']}@127.0.0.1:5432/ops_secrets"
            f"?sslpassword={planted['pg_query']}"
        ),
        "OPS_PUBLISHED_POSTGRES_URL": (
            f"postgresql://postgres:{planted['published_password']}@127.0.0.1:5432/ops_pub"
        ),
        "OPS_ALERT_WEBHOOK_URL": f"http://{api}/hooks/T000/B000/{planted['webhook']}",
        "OPS_BI_READER_PASSWORD": planted["bi_password"],
        "OPS_RAW_ARCHIVE_DIR": f"s3://AKIAEXAMPLE:{planted['archive_url']}@bucket/raw",
        "AIRFLOW_CONN_SMTP_DEFAULT": (
            f"smtp://alerts:{planted['smtp_password']}@127.0.0.1:1?disable_tls=true"
        ),
    }


PLANTED_NAMES = (
    "marketing_url",
    "marketing_token",
    "support_url",
    "support_token",
    "shop_url",
    "shop_token",
    "pg_password",
    "pg_query",
    "published_password",
    "webhook",
    "bi_password",
    "archive_url",
    "smtp_password",
)


@pytest.fixture
def planted() -> dict[str, str]:
    return {name: secret(name.replace("_", "")) for name in PLANTED_NAMES}


@pytest.fixture
def log_factory_restored():
    """The code under test installs log redaction (as the command line and every Airflow
    task do first): the process's log record factory is put back afterwards."""
    import logging

    previous = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(previous)


# --- ops settings ---------------------------------------------------------------------------


def test_ops_settings_shows_every_setting_and_no_secret(planted, monkeypatch, tmp_path, capsys):
    for name, value in planted_env(8765, planted).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPS_HOME", str(tmp_path))
    monkeypatch.setattr(cli, "console", Console(width=1000, color_system=None))
    settings_module.get_settings.cache_clear()
    try:
        assert cli.main(["settings"]) == 0
    finally:
        settings_module.get_settings.cache_clear()
    out = capsys.readouterr().out
    assert leaks(out, planted) == []
    for shown in (
        "http://***@127.0.0.1:8765",  # user:pass and token-only user info
        "http://127.0.0.1:8765/admin?access_token=***&v=1",  # a query parameter
        "postgresql://postgres:***@127.0.0.1:5432/ops_secrets?sslpassword=***",
        "http://127.0.0.1:8765/***",  # the webhook's path is its secret
        "s3://***@bucket/raw",
        "marketing_api_token",
    ):
        assert shown in out, f"{shown!r} missing from:\n{out}"


# --- a failed load: audit (working and published), alerts, logs ----------------------------


@pytest.mark.usefixtures("fixed_data_docs", "log_factory_restored")
def test_a_failed_load_keeps_its_secrets_out_of_audit_alerts_and_logs(
    duckdb_marts, planted, monkeypatch, tmp_path, caplog, capsys
):
    api = duckdb_marts.marketing_api_url.removeprefix("http://")
    with WebhookSink() as hook, SmtpSink() as smtp:
        webhook = f"{hook.url}/{planted['webhook']}"
        settings = working_copy(
            duckdb_marts,
            tmp_path / "home",
            marketing_api_url=f"http://mkt-user:{planted['marketing_url']}@{api}",
            marketing_api_token=planted["marketing_token"],
            support_api_token=planted["support_token"],
            shop_api_token=planted["shop_token"],
            bi_reader_password=planted["bi_password"],
            alert_webhook_url=webhook,
            alert_emails=("data-eng@ops.test",),
        )
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.airflow_conn)
        monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
        this = run(f"scheduled__{MARTS_UNTIL}", dag_id="ingest_marketing")
        context = airflow_context(this, "load_marketing")
        tasks.on_task_start(context)  # what every task does first

        window = day_window(MARTS_UNTIL)
        with pytest.raises(tasks.LoadBlocked) as err:
            tasks.run_load("marketing", window.start, window.end, this.run_id)
        # the error quoted the URL with its user info; it left the task body redacted
        assert f"http://***@{api}/marketing/" in str(err.value.__cause__)
        context["exception"] = err.value
        tasks.on_task_failure(context)

        transform = run("scheduled__secrets")
        audit.record_run_start(settings, transform)
        publish.publish(settings, transform)

    # the run is recorded as failed, naming the API and its (redacted) URL
    for path in (settings.warehouse_path, settings.published_path):
        with duckdb.connect(str(path), read_only=True) as con:
            status, message = con.execute(
                "select status, message from audit.pipeline_runs where dag_id = ?",
                ["ingest_marketing"],
            ).fetchone()
            everything = " ".join(
                str(row)
                for table in audit.AUDIT_TABLES
                for row in con.execute(f"select * from audit.{table}").fetchall()
            )
        assert status == "failed"
        assert "marketing" in message and f"http://***@{api}" in message, message
        assert leaks(everything, planted) == [], path

    # alerted on both channels, without the secrets
    [post] = hook.posts
    assert post["json"]["kind"] == "load blocked" and "marketing" in post["json"]["error"]
    assert leaks(json.dumps(post["json"]), planted) == []  # (its path is the webhook's)
    [mail] = smtp.messages
    assert "load blocked" in mail["Subject"] and leaks(message_text(mail), planted) == []

    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert "ALERT load blocked" in logged
    assert leaks(logged, planted) == []


@pytest.mark.usefixtures("log_factory_restored")
def test_the_report_delivery_record_keeps_no_secret(planted, monkeypatch, caplog):
    """What delivery.json (archived beside each report) and the log say of a failed send."""
    from ops_warehouse.redact import install_log_redaction

    smtp_url = f"smtp://alerts:{planted['smtp_password']}@mail.example.com:587"

    def refused(settings, message):
        raise smtplib.SMTPAuthenticationError(535, f"login refused by {smtp_url}".encode())

    install_log_redaction()  # as `ops report` and the report tasks do
    monkeypatch.setattr(delivery, "message", lambda rendered, to: EmailMessage())
    settings = dataclasses.replace(Settings.from_env(), report_send_attempts=2)

    class NotConfigured(Exception):
        pass

    result = delivery._send(
        settings, None, ["ops@ops.test"], 0, lambda s: None, NotConfigured, refused
    )
    record = json.dumps(dataclasses.asdict(result))
    assert result.status == "failed" and "SMTPAuthenticationError" in record
    assert "smtp://alerts:***@mail.example.com:587" in record
    assert "sending the report failed (attempt 2 of 2)" in caplog.text
    assert leaks(record + caplog.text, planted) == []


# --- the BI password and the PostgreSQL server ----------------------------------------------


class ServerLog:
    """What the PostgreSQL server writes to its log, read through SQL as superuser: the
    current log file (logging_collector on) or the postmaster's stderr (the Debian default:
    stderr redirected to a file). None when neither can be read from here."""

    def __init__(self) -> None:
        with psycopg.connect(ADMIN, autocommit=True) as con:
            current = con.execute("select pg_current_logfile()").fetchone()[0]
            if current is None:
                pid = con.execute(
                    "select split_part(pg_read_file('postmaster.pid'), E'\\n', 1)"
                ).fetchone()[0]
                current = f"/proc/{pid}/fd/2"
            self.path = current
            try:
                self.start = self._size(con)
            except psycopg.Error:
                self.path = None

    def _size(self, con) -> int:
        return con.execute("select size from pg_stat_file(%s)", [self.path]).fetchone()[0]

    def since_start(self) -> str | None:
        if self.path is None:
            return None
        with psycopg.connect(ADMIN, autocommit=True) as con:
            end = self._size(con)
            return con.execute(
                "select pg_read_file(%s, %s, %s)", [self.path, self.start, end - self.start]
            ).fetchone()[0]


@pytest.fixture
def pg_bi(planted, monkeypatch):
    """Settings on private PostgreSQL databases and a uniquely named reader role (roles are
    cluster-wide), with every statement of this process logged by the server."""
    name = f"ops_secrets_{uuid.uuid4().hex[:8]}"
    role = f"bi_reader_s{uuid.uuid4().hex[:8]}"
    working = scratch_pg_database(name)
    published = scratch_pg_database(f"{name}_pub")
    settings = dataclasses.replace(
        Settings.from_env(),
        warehouse="postgres",
        postgres_url=working,
        published_postgres_url=published,
        bi_reader_password=planted["bi_password"],
    )
    monkeypatch.setenv("PGOPTIONS", "-c log_statement=all")  # libpq: every connection
    yield settings, role
    with psycopg.connect(ADMIN, autocommit=True) as con:
        for r in (role, f"{role}_nocreate"):
            if con.execute("select 1 from pg_roles where rolname = %s", [r]).fetchone():
                con.execute(f'drop owned by "{r}"')
                con.execute(f'drop role "{r}"')
    drop_pg_database(name)
    drop_pg_database(f"{name}_pub")


def scram_parts(verifier: str) -> tuple[int, bytes, bytes, bytes]:
    match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier)
    assert match, verifier
    iterations, salt, stored, server = match.groups()
    return int(iterations), *(base64.b64decode(p) for p in (salt, stored, server))


def test_the_bi_password_reaches_postgresql_only_as_a_scram_verifier(
    pg_bi, planted, tmp_path, monkeypatch
):
    settings, role = pg_bi
    password = settings.bi_reader_password
    server_log = ServerLog()

    status = bi_access.setup_bi_reader(settings, role)  # creates the role
    assert status.created
    bi_access.setup_bi_reader(settings, role)  # and refreshes it (ALTER ROLE)

    # every byte sent to the server, traced by libpq itself
    trace = tmp_path / "libpq.trace"
    with psycopg.connect(ADMIN, autocommit=True) as con, trace.open("w") as out:
        con.pgconn.trace(out.fileno())
        assert ensure_role(con, role, password) is False
        con.pgconn.untrace()
    sent = trace.read_text()
    assert f'alter role "{role}"' in sent and "SCRAM-SHA-256$4096:" in sent
    assert leaks(sent, planted) == []

    # a statement that fails is logged whatever log_statement says: a user without CREATEROLE
    with psycopg.connect(ADMIN, autocommit=True) as con:
        con.execute(f'create role "{role}_nocreate" login')
    monkeypatch.delenv("PGOPTIONS")  # only a superuser may set log_statement
    with psycopg.connect(ADMIN.replace("postgres@", f"{role}_nocreate@"), autocommit=True) as con:
        with pytest.raises(BiAccessError, match="CREATEROLE"):
            ensure_role(con, role, password)

    # stored as a verifier, which PostgreSQL's own SCRAM exchange would check
    with psycopg.connect(ADMIN) as con:
        stored = con.execute(
            "select rolpassword from pg_authid where rolname = %s", [role]
        ).fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$4096:")
    iterations, salt, stored_key, server_key = scram_parts(stored)
    assert (iterations, len(salt)) == (4096, 16)
    # recomputed here from the password alone (RFC 5802): SaltedPassword, ClientKey, StoredKey
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert hashlib.sha256(client_key).digest() == stored_key
    assert hmac.new(salted, b"Server Key", hashlib.sha256).digest() == server_key
    # the local server trusts 127.0.0.1, so this login shows the role may log in, not that
    # the password is checked (the verifier above is what a scram-sha-256 server checks)
    with bi_access_connect(settings, role, password) as reader:
        assert reader.execute("select current_user").fetchone()[0] == role

    logged = server_log.since_start()
    if logged is None:
        pytest.skip("the server log cannot be read from here; the libpq trace above is the check")
    assert f'create role "{role}"' in logged and f'alter role "{role}"' in logged
    assert f'STATEMENT:  alter role "{role}"' in logged  # the refused one, with its text
    assert "SCRAM-SHA-256$4096:" in logged
    assert leaks(logged, planted) == []


def bi_access_connect(settings: Settings, role: str, password: str) -> psycopg.Connection:
    from sqlalchemy.engine import make_url

    url = make_url(settings.published_postgres_url)
    return psycopg.connect(
        host=url.host, port=url.port or 5432, dbname=url.database, user=role, password=password
    )


@pytest.mark.parametrize(
    "password",
    [
        "plain-ascii-Pw1",
        "with space and 'quote' \\ and $dollar",
        "pässwörd",  # NFKC leaves it
        "I\u00adX",  # a soft hyphen is mapped to nothing
        "a\u2003b",  # an em space is mapped to a space
        "\ufb01le",  # the fi ligature is normalized to "fi"
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",  # right-to-left only: prepared
        "\u0627abc",  # mixed directions: refused by SASLprep, hashed as given
        "x\u0007\u00e9",  # a control character: refused, hashed as given
    ],
)
def test_the_verifier_is_the_one_libpq_computes(password):
    """libpq's PQencryptPasswordConn (psql's \\password) with the same salt gives the same
    verifier: the same SASLprep, key derivation and format as PostgreSQL's client."""
    with psycopg.connect(ADMIN) as con:
        theirs = con.pgconn.encrypt_password(
            password.encode(), b"bi_reader", b"scram-sha-256"
        ).decode()
    iterations, salt, _, _ = scram_parts(theirs)
    assert scram_sha_256_verifier(password, salt=salt, iterations=iterations) == theirs
    assert scram_sha_256_verifier(password) != scram_sha_256_verifier(password)  # fresh salt


# --- the Airflow task log -------------------------------------------------------------------

AIRFLOW_SCRIPT = textwrap.dedent(
    """
    import json, os
    from datetime import UTC, datetime

    from airflow.models.pool import Pool
    from airflow.utils import db

    db.initdb()
    Pool.create_or_update_pool("warehouse_writer", 1, "one writer", include_deferred=False)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    dr = bag.get_dag("ingest_marketing").test(logical_date=datetime(2026, 11, 23, tzinfo=UTC))
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    print("RESULT " + json.dumps({"state": str(dr.state), "tasks": states}))
    """
)


def test_a_failed_airflow_task_masks_the_secrets_in_its_log(planted, server, tmp_path):
    """The ingest DAG through Airflow (`dag.test`, as `make demo` runs it), its API refusing
    the credentials in the URL: the traceback Airflow logs quotes that URL."""
    home = tmp_path / "home"
    port = int(server.url.rsplit(":", 1)[1])
    env = {k: v for k, v in airflow_env(Settings.from_env()).items() if not k.startswith("OPS_")}
    with WebhookSink() as hook:
        hook_port = hook.url.split(":")[2].split("/")[0]
        env.update(planted_env(port, planted))
        env.update(
            AIRFLOW_HOME=str(home / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "airflow" / "logs"),
            OPS_HOME=str(home),
            OPS_WAREHOUSE="duckdb",
            OPS_POSTGRES_URL=env["OPS_POSTGRES_URL"],
            OPS_ALERT_WEBHOOK_URL=(
                f"http://127.0.0.1:{hook_port}/hooks/T000/B000/{planted['webhook']}"
            ),
            OPS_ALERT_EMAILS="data-eng@ops.test",
            OPS_RAW_ARCHIVE_DIR="off",
        )
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env["PYTHONPATH"]])
        result = subprocess.run(
            [sys.executable, "-c", AIRFLOW_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        posts = list(hook.posts)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    out = json.loads(next(line for line in result.stdout.splitlines() if "RESULT " in line)[7:])
    assert out["tasks"] == {"load_marketing": "failed"}, out

    task_logs = "\n".join(p.read_text() for p in (home / "airflow" / "logs").rglob("*.log"))
    everything = output + task_logs
    assert "LoadBlocked" in everything and "refused" in everything  # the failure was logged
    assert leaks(everything, planted) == [], leaking_lines(everything, planted)

    with duckdb.connect(str(home / "warehouse" / "working.duckdb"), read_only=True) as con:
        status, message = con.execute(
            "select status, message from audit.pipeline_runs where dag_id = 'ingest_marketing'"
        ).fetchone()
    assert status == "failed" and "http://***@127.0.0.1" in message
    assert leaks(message, planted) == []
    [post] = posts
    # the webhook's secret is in the path it is posted to, and nowhere in what is posted
    assert post["json"]["kind"] == "load blocked"
    assert leaks(json.dumps(post["json"]), planted) == []


def test_the_planted_secrets_are_valid_settings(planted, monkeypatch, tmp_path):
    """The secrets above sit in settings the pipeline accepts (not refused before use)."""
    for name, value in planted_env(8765, planted).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPS_HOME", str(tmp_path))
    s = Settings.from_env()
    assert set(planted.values()) - {planted["smtp_password"]} <= {
        v for value in s.secrets() for v in (value, *value.split("/"))
    }
