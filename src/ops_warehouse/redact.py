"""Secrets out of every text the project stores, logs, alerts or prints: one function, redact().

Two kinds of secret are masked (replaced by ``***``):

- the shapes a secret takes in text, whoever it belongs to: the user info of a URL
  (``https://user:pass@host``, ``https://token@host``; a database URL keeps its user name,
  ``postgresql://ops:***@host``), URL query parameters named like a secret (``password=``,
  ``token=``, ``secret=``, ``key=``, ``sig=`` …), ``name=value`` / ``"name": "value"`` pairs
  named like one (``password``, ``token``, ``secret``, ``api_key`` …), ``Authorization:``
  and similar headers, and ``Bearer …`` tokens;
- the literal values of the secrets configured: every ``Settings`` object remembers its tokens,
  passwords and URL credentials here when it is built (:func:`remember`), so they are masked
  wherever they appear, in whatever shape the text has them (also URL-encoded).

The audit trail (run messages, check results), alerts, report delivery records, the command
line's error exit, ``ops settings`` and the log records of the command line and of every
Airflow task (:func:`install_log_redaction`) pass through here.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import traceback
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

MASK = "***"

# Shorter values are too likely to occur in ordinary text ("test", "ops"): they are masked
# where a pattern finds them (URL user info, name=value pairs, headers), not everywhere.
# Airflow's own task-log masker uses the same limit (min_length_masked_secret).
MIN_SECRET_LENGTH = 5

# URL schemes whose user info names a login rather than carrying a credential: their user name
# is kept (it says which role ran), the password masked. Every other scheme (https, s3, …)
# has its whole user info masked, since an API token is often the user part alone.
LOGIN_SCHEMES = (
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "mssql",
    "oracle",
    "redshift",
    "snowflake",
    "sqlite",
    "duckdb",
    "clickhouse",
    "mongodb",
    "redis",
    "rediss",
    "amqp",
    "amqps",
    "smtp",
    "smtps",
    "imap",
    "imaps",
)

# a query parameter whose value is a secret: password, passwd, pwd, token, secret, api_key,
# key, signature, credential; sig and auth as whole names
_SECRET_PARAM = (
    r"(?:[^=&#\s;?]*?(?:pass|pwd|token|secret|key|signature|credential)[^=&#\s;?]*|sig|auth)"
)
_SECRET_PARAM_NAME = re.compile(rf"^{_SECRET_PARAM}$", re.IGNORECASE)
# names that look like a secret's but hold a paging cursor (docs/sources.md: page_token)
PUBLIC_NAMES = ("page_token", "next_page_token", "pagination_token", "continuation_token")

_URL = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*)://(?P<authority>[^\s/?#'\"<>\\]*)", re.I)
_QUERY_PARAM = re.compile(
    rf"(?P<lead>[?&;](?P<name>{_SECRET_PARAM})=)(?P<value>[^&#\s;'\"<>]*)", re.IGNORECASE
)
_PAIR = re.compile(
    r"(?P<lead>\b(?P<name>[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|credentials?)[\w.-]*)"
    r"(?:\s*=\s*|[\"']\s*:\s*)(?P<quote>[\"'])?)"
    r"(?P<value>(?(quote)[^\"'\n]*|[^\s&#,;'\"()\[\]{}<>]+))",
    re.IGNORECASE,
)
_HEADER = re.compile(
    r"(?P<lead>\b(?:proxy-)?(?:authorization|x-api-key|api-key|x-auth-token|x-access-token"
    r"|private-token|cookie|set-cookie)[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\r\n\"']+)",
    re.IGNORECASE,
)
# a token has a digit or punctuation in it, or is long: "the bearer token" is left alone
_BEARER = re.compile(
    r"(?P<lead>\bbearer\s+)"
    r"(?P<value>(?=[A-Za-z]*[0-9\-._~+/]|[A-Za-z]{20})[A-Za-z0-9\-._~+/]+=*)",
    re.IGNORECASE,
)

_lock = threading.Lock()
_secrets: set[str] = set()
_literal: re.Pattern[str] | None = None


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``***`` (see the module's docstring)."""
    if not text:
        return text
    literal = _literal
    if literal is not None:
        text = literal.sub(MASK, text)
    text = _URL.sub(_mask_user_info, text)
    text = _QUERY_PARAM.sub(_keep_lead, text)
    text = _PAIR.sub(_keep_lead, text)
    text = _HEADER.sub(_keep_lead, text)
    return _BEARER.sub(_keep_lead, text)


def _keep_lead(match: re.Match[str]) -> str:
    name = match.groupdict().get("name")
    if not match["value"] or (name and name.lower() in PUBLIC_NAMES):
        return match[0]
    return match["lead"] + MASK


def _mask_user_info(match: re.Match[str]) -> str:
    scheme, authority = match["scheme"], match["authority"]
    if "@" not in authority:
        return match[0]
    user_info, host = authority.rsplit("@", 1)
    if _is_login_scheme(scheme):
        user, has_password, _ = user_info.partition(":")
        user_info = f"{user}:{MASK}" if has_password else user
    else:
        user_info = MASK
    return f"{scheme}://{user_info}@{host}"


def _is_login_scheme(scheme: str) -> bool:
    return scheme.lower().split("+", 1)[0] in LOGIN_SCHEMES


def secrets_in_url(url: str) -> list[str]:
    """The secret parts of one URL: its password (and, unless its scheme names a login, its
    user part) and the values of query parameters named like a secret."""
    if "://" not in url:
        return []
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    found = []
    if "@" in authority:
        user, _, password = authority.rsplit("@", 1)[0].partition(":")
        found.append(password)
        if not _is_login_scheme(scheme):
            found.append(user)
    try:
        query = urlsplit(url).query
    except ValueError:  # a malformed URL (the settings refuse it, naming the setting)
        query = rest.partition("?")[2]
    found += [
        value
        for name, value in parse_qsl(query)
        if _SECRET_PARAM_NAME.match(name) and name.lower() not in PUBLIC_NAMES
    ]
    return [value for value in found if value]


def remember(values: Iterable[str | None]) -> None:
    """Mask these values wherever they appear from now on (with their URL-encoded and
    JSON-escaped spellings). Values shorter than ``MIN_SECRET_LENGTH`` are left to the
    patterns."""
    global _literal
    new = set()
    for value in values:
        if not value or len(value) < MIN_SECRET_LENGTH or value == MASK:
            continue
        for spelling in (
            value,
            unquote(value),
            quote(value, safe=""),
            quote_plus(value),
            json.dumps(value)[1:-1],
        ):
            if len(spelling) >= MIN_SECRET_LENGTH:
                new.add(spelling)
    with _lock:
        if new <= _secrets:
            return
        _secrets.update(new)
        # the longest first, so that a secret containing another is masked whole
        alternatives = sorted(_secrets, key=len, reverse=True)
        _literal = re.compile("|".join(re.escape(s) for s in alternatives))


def remembered() -> tuple[str, ...]:
    """The secret values being masked (for Airflow's own task-log masker)."""
    with _lock:
        return tuple(sorted(_secrets))


def redact_exception(exc: BaseException) -> BaseException:
    """Redact an exception's message in place, and its causes' and contexts': a traceback
    printed or logged afterwards shows ``***`` where the secrets were."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        try:
            current.args = tuple(_redact_arg(a) for a in current.args)
        except (AttributeError, TypeError):  # an extension type with a read-only args
            pass
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [redact(n) if isinstance(n, str) else n for n in notes]
        pending += [current.__cause__, current.__context__]
    return exc


def _redact_arg(arg: object) -> object:
    if isinstance(arg, str):
        return redact(arg)
    if isinstance(arg, bytes):  # a server's answer (smtplib keeps it as bytes)
        text = arg.decode("utf-8", "replace")
        redacted = redact(text)
        return redacted.encode() if redacted != text else arg
    return arg


class RedactingFilter(logging.Filter):
    """Redacts a log record's message and its exception's text (see :func:`redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_ops_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it, as without this filter
            return True
        record.msg, record.args = redact(message), ()
        if record.exc_info and record.exc_info[1] is not None:
            redact_exception(record.exc_info[1])
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._ops_redacted = True
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Redact every log record of this process from now on, whichever handler writes it
    (those configured later too): records are redacted as they are created. Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_ops_redacting", False):
        return

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _FILTER.filter(record)
        return record

    redacting_factory._ops_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)
