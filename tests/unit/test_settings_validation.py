"""Settings are checked when they are read: a value the pipeline cannot use stops every entry
point at once (`ops`, the DAG files, the tasks) with an error that names the setting and
never repeats a secret. The time zone and the currency are written into SQL, so the checks
are what keeps a value like ``USD' or '1'='1`` out of it."""

from __future__ import annotations

import dataclasses

import pytest

from ops_warehouse import cli
from ops_warehouse import settings as settings_module
from ops_warehouse.errors import OpsWarehouseError
from ops_warehouse.redact import redact
from ops_warehouse.settings import ISO_4217_CURRENCIES, Settings, SettingsError

SECRET = "pw-Sx81-never-shown"


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment (no OPS_* of the machine) with a private home."""
    import os

    for name in list(os.environ):
        if name.startswith("OPS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPS_HOME", str(tmp_path))
    settings_module.get_settings.cache_clear()
    yield monkeypatch
    settings_module.get_settings.cache_clear()


def test_the_defaults_are_valid(env):
    s = Settings.from_env()
    assert (s.business_tz, s.reporting_currency) == ("UTC", "USD")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("OPS_BUSINESS_TZ", "Europe/Berlin"),
        ("OPS_BUSINESS_TZ", "America/Argentina/Buenos_Aires"),
        ("OPS_BUSINESS_TZ", "Etc/GMT+5"),
        ("OPS_REPORTING_CURRENCY", "EUR"),
        ("OPS_REPORTING_CURRENCY", "JPY"),
        ("OPS_DUCKDB_MEMORY_LIMIT", "8GB"),
        ("OPS_DUCKDB_MEMORY_LIMIT", "1.5 GiB"),
        ("OPS_DUCKDB_MEMORY_LIMIT", "500MB"),
        ("OPS_MARKETING_API_URL", "https://ads.example.com/api"),
        ("OPS_SUPPORT_API_URL", "http://10.0.0.7:8080"),
        ("OPS_POSTGRES_URL", "postgresql+psycopg://ops:pw@db.example.com:6543/ops"),
        ("OPS_SHOP_DB_URL", "mysql+pymysql://shop@10.0.0.5/shop"),
        ("OPS_SHOP_DB_URL", "sqlite:////var/lib/shop.sqlite"),
        ("OPS_ALERT_WEBHOOK_URL", "https://hooks.example.com/services/T0/B0/x"),
        ("OPS_DOCS_BASE_URL", "https://airflow.example.com/ops"),
    ],
)
def test_usable_values_are_accepted(env, setting, value):
    env.setenv(setting, value)
    Settings.from_env()


def test_a_currency_in_lower_case_reads_as_its_code(env):
    env.setenv("OPS_REPORTING_CURRENCY", " eur ")
    assert Settings.from_env().reporting_currency == "EUR"


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("OPS_REPORTING_CURRENCY", "USD' or '1'='1", "ISO 4217"),
        ("OPS_REPORTING_CURRENCY", "XYZ", "ISO 4217"),  # three letters, no currency
        ("OPS_REPORTING_CURRENCY", "DOLLARS", "ISO 4217"),
        ("OPS_REPORTING_CURRENCY", "XAU", "ISO 4217"),  # gold is a code, not a currency
        ("OPS_BUSINESS_TZ", "Mars/Olympus_Mons", "IANA time zone"),
        ("OPS_BUSINESS_TZ", "UTC') or (1=1", "IANA time zone"),
        ("OPS_BUSINESS_TZ", "+02:00", "IANA time zone"),
        ("OPS_DUCKDB_MEMORY_LIMIT", "8GB'; attach 'x", "a size"),
        ("OPS_DUCKDB_MEMORY_LIMIT", "lots", "a size"),
        ("OPS_MARKETING_API_URL", "127.0.0.1:8765", "http:// or https://"),
        ("OPS_MARKETING_API_URL", "ftp://files.example.com", "http:// or https://"),
        ("OPS_SUPPORT_API_URL", "http://:8080", "names no host"),
        ("OPS_SHOP_API_URL", "https:///admin", "names no host"),
        ("OPS_ALERT_WEBHOOK_URL", "hooks.example.com/services/x", "http:// or https://"),
        ("OPS_DOCS_BASE_URL", "localhost:8080/ops", "http:// or https://"),
        ("OPS_DOCS_BASE_URL", "https://u-Zr4@airflow.example.com/ops", "no user or password"),
        ("OPS_POSTGRES_URL", "mysql://ops@db/ops", "postgresql://"),
        ("OPS_POSTGRES_URL", "postgresql://ops@db:port/ops", "not a well-formed URL"),
        ("OPS_POSTGRES_URL", "postgresql://ops@db.example.com", "names no database"),
        ("OPS_PUBLISHED_POSTGRES_URL", "postgresql:///ops", "names no host"),
        ("OPS_SHOP_DB_URL", "sqlite://", "names no database file"),
        ("OPS_SHOP_DB_URL", "/var/lib/shop.sqlite", "must start with"),
        ("OPS_PAGE_SIZE", "ten", "a whole number"),
        ("OPS_HTTP_TIMEOUT_S", "30s", "a number of seconds"),
        ("OPS_DEMO_UNTIL", "22/11/2026", "a date"),
        ("OPS_WAREHOUSE", "sqlite", "'duckdb', 'postgres' or 'spark'"),
        ("OPS_REPORT_LANGUAGE", "fr", "OPS_REPORT_LANGUAGE must be one of"),
    ],
)
def test_unusable_values_are_refused_naming_the_setting(env, setting, value, says):
    env.setenv(setting, value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    message = str(err.value)
    assert setting in message and says in message, message
    assert isinstance(err.value, OpsWarehouseError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("OPS_MARKETING_API_URL", f"api.example.com:{SECRET}@x"),  # no scheme
        ("OPS_MARKETING_API_URL", f"http//user:{SECRET}@api.example.com"),
        ("OPS_SUPPORT_API_URL", f"ftp://user:{SECRET}@helpdesk.example.com"),
        ("OPS_POSTGRES_URL", f"postgresql://ops:{SECRET}@db.example.com"),
        ("OPS_POSTGRES_URL", f"postgresql://ops:{SECRET}@db.example.com:nope/ops"),
        ("OPS_SHOP_DB_URL", f"shop:{SECRET}@db.example.com/shop"),
        ("OPS_ALERT_WEBHOOK_URL", f"hooks.example.com/services/{SECRET}"),
        ("OPS_DOCS_BASE_URL", f"ftp://{SECRET}@airflow.example.com"),
        ("OPS_DOCS_BASE_URL", f"https://docs:{SECRET}@airflow.example.com/ops"),
        ("OPS_MARKETING_API_URL", f"https://api.example.com:99999/v1?token={SECRET}"),
    ],
)
def test_a_refused_url_is_never_echoed_with_its_secret(env, setting, value):
    env.setenv(setting, value)
    with pytest.raises(SettingsError) as err:
        Settings.from_env()
    assert setting in str(err.value)
    assert SECRET not in str(err.value), str(err.value)


def test_settings_changed_in_code_are_checked_too(env):
    base = Settings.from_env()
    with pytest.raises(SettingsError, match="OPS_REPORTING_CURRENCY"):
        dataclasses.replace(base, reporting_currency="USD' or '1'='1")
    with pytest.raises(SettingsError, match="OPS_BUSINESS_TZ"):
        dataclasses.replace(base, business_tz="Nowhere/Special")


def test_building_settings_hands_their_secrets_to_redact(env):
    token, password = "tok-7Qx-marketing-secret", "bi-9Lw-reader-secret"
    env.setenv("OPS_MARKETING_API_TOKEN", token)
    env.setenv("OPS_BI_READER_PASSWORD", password)
    env.setenv("OPS_POSTGRES_URL", "postgresql://ops:pg-4Kz%2Fpass@db.example.com/ops")
    env.setenv("OPS_SUPPORT_API_URL", "https://hd-3Nv-token@helpdesk.example.com")
    s = Settings.from_env()
    assert {token, password, "pg-4Kz%2Fpass", "hd-3Nv-token"} <= set(s.secrets())
    text = redact(f"{token} {password} pg-4Kz/pass hd-3Nv-token")
    assert text == "*** *** *** ***"


def test_the_injected_currency_stops_the_command_line_at_once(env, capsys):
    env.setenv("OPS_REPORTING_CURRENCY", "USD' or '1'='1")
    assert cli.main(["settings"]) == 1
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "OPS_REPORTING_CURRENCY must be an ISO 4217 currency code" in out
    assert "USD' or '1'='1" in out


def test_the_currency_list_holds_every_currency_the_contract_allows():
    from ops_warehouse.pipeline.contracts import CURRENCIES

    assert set(CURRENCIES) <= ISO_4217_CURRENCIES
    assert len(ISO_4217_CURRENCIES) > 150 and all(len(c) == 3 for c in ISO_4217_CURRENCIES)
