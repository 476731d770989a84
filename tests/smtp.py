"""The local SMTP server tests send email to: a real aiosmtpd server that keeps every message,
registered as the Airflow connection ``smtp_default``. A test module gets the ``smtp`` fixture
by importing it: ``from tests.smtp import smtp_fixture  # noqa: F401``."""

from __future__ import annotations

import pytest

from tests.quality.wap import SmtpSink


@pytest.fixture(name="smtp")
def smtp_fixture(monkeypatch):
    with SmtpSink() as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.airflow_conn)
        yield sink
