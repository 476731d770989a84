"""redact(): every shape a secret takes in text is masked, and nothing else is.

Each case plants a secret in one shape and checks that it is gone, that ``***`` took its place
and that the text around it (what a reader needs: host, path, setting name) is still there.
The literal secrets remembered from the settings are random per test, so that they cannot
mask another test's text.
"""

from __future__ import annotations

import logging
import secrets

import pytest

from ops_warehouse import redact as redact_module
from ops_warehouse.redact import (
    MASK,
    MIN_SECRET_LENGTH,
    RedactingFilter,
    install_log_redaction,
    redact,
    redact_exception,
    remember,
    remembered,
    secrets_in_url,
)

SECRET = "Zq7-hunter2-Xy"

# (text with SECRET in it, a part that must stay)
SHAPES = [
    # URL user info, web schemes: the whole user info is a credential
    (f"GET http://user:{SECRET}@api.example.com/v1/orders failed", "api.example.com/v1/orders"),
    (f"https://{SECRET}@api.example.com/v1", "https://***@api.example.com/v1"),
    (f"https://{SECRET}:x@helpdesk.example.com/api/v2/tickets", "helpdesk.example.com"),
    (f"s3://AKIAEXAMPLE:{SECRET}@bucket/raw", "bucket/raw"),
    (f"ftp://ops:{SECRET}@files.example.com/in", "files.example.com"),
    # database URLs keep the user name, mask the password (also an unencoded @ in it)
    (f"postgresql://ops:{SECRET}@db.example.com:5432/ops", "postgresql://ops:***@db.example.com"),
    (f"postgresql+psycopg://ops:p@{SECRET}@db/ops", "postgresql+psycopg://ops:***@db/ops"),
    (f"could not connect (mysql+pymysql://shop:{SECRET}@10.0.0.5/shop)", "shop:***@10.0.0.5"),
    (f"smtp://alerts%40ops.example:{SECRET}@mail.example.com:587", "alerts%40ops.example:***@"),
    # query parameters named like a secret
    (f"https://api.example.com/x?page=2&token={SECRET}&page_size=5", "page=2&token=***&page_size"),
    (f"https://api.example.com/x?password={SECRET}", "?password=***"),
    (f"https://api.example.com/x?api_key={SECRET}#frag", "api_key=***#frag"),
    (f"https://b.s3.example.com/o?X-Amz-Signature={SECRET}&X-Amz-Expires=60", "X-Amz-Expires=60"),
    (f"https://sas.example.com/c?sv=2024&sig={SECRET}", "sv=2024&sig=***"),
    (f"https://api.example.com/x?client_secret={SECRET}&grant=1", "grant=1"),
    (f"https://api.example.com/x?key={SECRET}", "?key=***"),
    (f"postgresql://ops@db/ops?sslpassword={SECRET}", "postgresql://ops@db/ops?sslpassword=***"),
    # name=value and "name": "value" pairs
    (f"host=db port=5432 password={SECRET} dbname=ops", "dbname=ops"),
    (f"OPS_SUPPORT_API_TOKEN={SECRET} OPS_PAGE_SIZE=100", "OPS_PAGE_SIZE=100"),
    (f'{{"password": "{SECRET}", "user": "ops"}}', '"user": "ops"'),
    (f"{{'api_key': '{SECRET}', 'page': 1}}", "'page': 1"),
    (f"secret = {SECRET}", "secret = ***"),
    (f"access_key={SECRET}&region=eu", "region=eu"),
    # headers and bearer tokens
    (f"Authorization: Bearer {SECRET}\nAccept: application/json", "Accept: application/json"),
    (f"{{'Authorization': 'Bearer {SECRET}', 'Accept': 'json'}}", "'Accept': 'json'"),
    (f"authorization: Basic {SECRET}", "authorization: ***"),
    (f"X-Api-Key: {SECRET}", "X-Api-Key: ***"),
    (f"request sent with bearer {SECRET} was refused", "was refused"),
    (f"Cookie: session={SECRET}", "Cookie: ***"),
]


@pytest.mark.parametrize(("text", "kept"), SHAPES)
def test_every_shape_of_a_secret_is_masked(text, kept):
    out = redact(text)
    assert SECRET not in out, out
    assert MASK in out
    assert kept in out, f"{kept!r} should stay readable: {out!r}"


@pytest.mark.parametrize(("text", "kept"), SHAPES)
def test_redacting_twice_changes_nothing(text, kept):
    assert redact(redact(text)) == redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "marketing API token is not set: set OPS_MARKETING_API_TOKEN to the bearer token",
        "postgresql://postgres@127.0.0.1:5432/ops_warehouse (PostgreSQL)",
        "http://127.0.0.1:8765/marketing/v1/campaigns?page_size=1000&page_token=abc123",
        "primary key (dag_id, run_id); orders record_key=42 quarantined",
        "3 checks passed, 1 failed: expect_column_values_to_not_be_null (order_id)",
        "https://airflow.example.com/ops/data-docs/index.html",
        "author=ops&authority=local",
        "",
    ],
)
def test_text_without_secrets_is_left_as_it_is(text):
    assert redact(text) == text


def test_remembered_secrets_are_masked_in_any_text_and_spelling():
    token = f"tok{secrets.token_urlsafe(12)}/+="
    remember([token])
    for text in (
        f"refused: {token}",  # as it is
        f"GET /x?t={token.replace('/', '%2F').replace('+', '%2B').replace('=', '%3D')}",
        f'{{"t": "{token}"}}',
    ):
        assert "tok" not in redact(text).split("refused: ")[-1].split("t=")[-1], redact(text)
    assert token in remembered()


def test_short_values_are_left_to_the_patterns():
    short = "ab" + secrets.token_hex(1)[: MIN_SECRET_LENGTH - 3]
    remember([short, "", None])
    assert short not in remembered()
    assert redact(f"the word {short} stays") == f"the word {short} stays"
    assert short not in redact(f"https://u:{short}@host/x")  # the pattern still finds it


def test_secrets_in_a_url():
    assert secrets_in_url("postgresql://ops:pw%40rd@db/ops?sslpassword=k3y") == ["pw%40rd", "k3y"]
    assert secrets_in_url("https://tok3n@api.example.com/v1") == ["tok3n"]
    assert secrets_in_url("https://key:X@helpdesk.example.com") == ["X", "key"]
    assert secrets_in_url("http://127.0.0.1:8765?page_token=abc&page_size=5") == []
    assert secrets_in_url("/var/lib/ops/raw_archive") == []
    # too malformed for urlsplit: the user info and the query are still found
    assert secrets_in_url("http://[broken@host/x?token=t0k") == ["[broken", "t0k"]


def test_an_exception_chain_is_redacted_in_place():
    try:
        try:
            raise ConnectionError(f"cannot reach https://u:{SECRET}@api.example.com")
        except ConnectionError as inner:
            raise RuntimeError(f"load failed: password={SECRET}", 3) from inner
    except RuntimeError as exc:
        exc.add_note(f"token={SECRET}")
        redact_exception(exc)
        import traceback

        text = "".join(traceback.format_exception(exc))
    assert SECRET not in text
    assert "api.example.com" in text and "load failed" in text and "3" in text


def test_an_exception_holding_bytes_is_redacted_too():
    import smtplib

    exc = smtplib.SMTPAuthenticationError(535, f"no: smtp://u:{SECRET}@mail.example.com".encode())
    assert SECRET not in str(redact_exception(exc))
    assert exc.args[0] == 535 and b"smtp://u:***@mail.example.com" in exc.args[1]


def test_log_records_are_redacted_whichever_handler_writes_them(caplog):
    token = f"lg{secrets.token_hex(8)}"
    remember([token])
    previous = logging.getLogRecordFactory()
    try:
        install_log_redaction()
        install_log_redaction()  # twice: still one redaction
        log = logging.getLogger("ops_warehouse.test_redact")
        with caplog.at_level(logging.INFO):
            log.warning("GET %s failed (%s)", f"https://u:{SECRET}@api.example.com", token)
            try:
                raise ValueError(f"postgresql://ops:{SECRET}@db/ops and {token}")
            except ValueError:
                log.exception("load failed with 100% certainty")
        assert SECRET not in caplog.text and token not in caplog.text
        assert "api.example.com" in caplog.text and "100% certainty" in caplog.text
        assert "postgresql://ops:***@db/ops" in caplog.text  # the traceback, redacted
    finally:
        logging.setLogRecordFactory(previous)


def test_a_malformed_log_call_is_left_to_its_handler():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "%d rows", ("many",), None)
    assert RedactingFilter().filter(record)  # no exception here: the handler reports it
    assert (record.msg, record.args) == ("%d rows", ("many",))


def test_the_literal_patterns_survive_many_secrets():
    values = [f"many{secrets.token_hex(6)}" for _ in range(200)]
    remember(values)
    text = " ".join(values)
    assert redact(text) == " ".join([MASK] * len(values))
    assert redact_module._literal is not None
