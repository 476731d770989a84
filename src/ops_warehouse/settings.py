"""One settings object for the whole project, read once from ``OPS_*`` environment variables.

Every path, URL, token and business setting lives here; nothing else in the code base
spells one out. The README's settings table documents each field.

A ``Settings`` object is checked when it is built (``SettingsError`` names the setting and
never repeats a secret): the time zone is an IANA name, the currency an ISO 4217 code, the
DuckDB memory limit a size, every URL has a scheme and a host. The business time zone and
the reporting currency are written into SQL (dbt vars, the Great Expectations queries), so
only these checked values ever reach it. Building one also hands its secrets to ``redact``,
which masks them in everything stored, logged, alerted or printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from ops_warehouse import redact
from ops_warehouse.errors import OpsWarehouseError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")


class SettingsError(OpsWarehouseError, ValueError):
    """A setting has a value the pipeline cannot use; the message names the setting."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekdays(value: str) -> frozenset[int]:
    """``sun`` / ``sat,sun`` / ``all`` / ``none`` as weekday numbers (0 = Monday)."""
    text = value.strip().lower()
    if text == "all":
        return frozenset(range(7))
    if text == "none":
        return frozenset()
    days = [part.strip()[:3] for part in text.split(",") if part.strip()]
    if not days or any(day not in WEEKDAYS for day in days):
        raise ValueError(value)
    return frozenset(WEEKDAYS.index(day) for day in days)


def _parsed(name: str, default: str, parse: Callable[[str], T], what: str) -> T:
    value = _env(name, default)
    try:
        return parse(value)
    except ValueError:
        raise SettingsError(f"{name} must be {what}, not {value!r}") from None


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: str
    warehouse_path: Path
    published_path: Path
    # DuckDB storage format the published file is written in (a DuckDB version, e.g. v1.0.0)
    published_storage_version: str
    postgres_url: str
    shop_db_url: str
    marketing_api_url: str
    marketing_api_token: str
    support_api_url: str
    support_api_token: str
    # which system each source is (docs/sources.md): the generic contract or a vendor's API
    support_dialect: str
    sales_dialect: str
    # Zendesk API-token auth is "{email}/token"; without an email the token is an OAuth one
    zendesk_email: str
    shop_api_url: str
    shop_api_token: str
    shopify_api_version: str
    # the ad platforms behind ad_performance and campaigns: generic, google_ads, meta_ads
    ad_platforms: tuple[str, ...]
    google_ads_api_url: str
    # where the OAuth refresh token is exchanged for an access token
    google_ads_oauth_url: str
    google_ads_api_version: str
    google_ads_client_id: str
    google_ads_client_secret: str
    google_ads_refresh_token: str
    google_ads_developer_token: str
    meta_api_url: str
    meta_api_version: str
    meta_access_token: str
    # where the signups come from: the marketing API (generic) or a HubSpot account
    signups_dialect: str
    hubspot_api_url: str
    hubspot_token: str
    # what the source systems do not hold (agents' cost, category rules…); None: no file
    mapping_file: Path | None
    landing_dir: Path
    demo_dir: Path
    demo_seed: int
    demo_scale: float
    demo_until: date
    demo_port: int
    # the address `make up` serves Airflow's UI and API on (127.0.0.1: this machine only)
    airflow_host: str
    business_tz: str
    reporting_currency: str
    ad_lookback_days: int
    # rows a page asked of an API: the generic dialect's (its documented maximum by default);
    # a vendor adapter asks for at most its own API's maximum
    page_size: int
    http_timeout_s: float
    http_max_attempts: int
    http_backoff_max_s: float
    dlt_dir: Path
    dbt_target: str
    # weekdays (0 = Monday) whose run is a full build: dbt --full-refresh, every check on whole
    # tables (OPS_FULL_REBUILD_DAYS; pipeline/run_mode.py)
    full_rebuild_weekdays: frozenset[int]
    freshness_hours: float
    volume_tolerance: float
    published_postgres_url: str
    quarantine_threshold: float
    row_drop_tolerance: float
    closed_period_days: int
    closed_period_tolerance: float
    duckdb_memory_limit: str
    alert_emails: tuple[str, ...]
    smtp_conn_id: str
    alert_webhook_url: str
    reports_dir: Path
    # where plugins/ops_warehouse_docs.py serves reports and docs, e.g. http://host:8080/ops
    docs_base_url: str
    report_language: str
    weekly_report_recipients: tuple[str, ...]
    daily_digest_recipients: tuple[str, ...]
    anomaly_sigma: float
    report_send_attempts: int
    parquet_export_dir: Path | None
    bi_reader_password: str
    # the port `make bi` serves Superset on (127.0.0.1 only)
    superset_port: int
    # as given: a folder or fsspec URL, "off", or "" for raw_archive under home (raw_archive_url)
    raw_archive_dir: str
    # OPS_WAREHOUSE=spark (warehouse/spark.py): the Thrift server dbt, the checks and the
    # readers use, and the folder every Spark node reads raw Parquet from
    spark_thrift_host: str = "127.0.0.1"
    spark_thrift_port: int = 10000
    spark_user: str = "ops"
    spark_lake_dir: Path = Path("var/spark/lake")

    def __post_init__(self) -> None:
        redact.remember(self.secrets())  # first: a refused URL's own secrets are masked too
        _validate(self)

    def secrets(self) -> list[str]:
        """The secret values these settings hold: every token and password setting, webhook
        URLs whole (their path is their secret) and the credentials inside every URL. Found
        by the settings' names, so that a setting added later is covered too."""
        found = []
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value:
                continue
            if _is_secret_field(f.name):
                found.append(value)
            elif "webhook" in f.name:
                found += [value, urlsplit(value).path]
            if f.name.endswith("_url") or f.name == "raw_archive_dir":
                found += redact.secrets_in_url(value)
        return [value for value in found if value]

    @property
    def raw_archive_url(self) -> str | None:
        """Where every load is archived (a folder or any fsspec URL); None when switched off.

        Resolved here rather than in ``from_env``, so that the default follows ``home`` when a
        tool or test moves it."""
        if self.raw_archive_dir.lower() == "off":
            return None
        return self.raw_archive_dir or str(self.home / "raw_archive")

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(_env("OPS_HOME", str(PROJECT_ROOT / "var"))).resolve()
        demo_dir = Path(_env("OPS_DEMO_DIR", str(home / "demo")))
        demo_port = _parsed("OPS_DEMO_PORT", "8765", int, "a port number")
        airflow_host = _env("OPS_AIRFLOW_HOST", "127.0.0.1")
        # Links in e-mails and dashboards go to Airflow's web server (plugins/
        # ops_warehouse_docs.py serves reports and docs at /ops/), never to file:// paths
        # on the pipeline's machine; a deployment reached by another name sets the setting.
        served_host = "127.0.0.1" if airflow_host in ("0.0.0.0", "::", "") else airflow_host
        airflow_port = os.environ.get("AIRFLOW__API__PORT") or "8080"
        demo_api = f"http://127.0.0.1:{demo_port}"
        warehouse = _env("OPS_WAREHOUSE", "duckdb")
        if warehouse not in ("duckdb", "postgres", "spark"):
            raise SettingsError(
                f"OPS_WAREHOUSE must be 'duckdb', 'postgres' or 'spark', not {warehouse!r}"
            )
        postgres_url = _env(
            "OPS_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/ops_warehouse"
        )
        return cls(
            home=home,
            warehouse=warehouse,
            warehouse_path=Path(
                _env("OPS_WAREHOUSE_PATH", str(home / "warehouse" / "working.duckdb"))
            ),
            published_path=Path(
                _env("OPS_PUBLISHED_PATH", str(home / "warehouse" / "published.duckdb"))
            ),
            published_storage_version=_env("OPS_PUBLISHED_STORAGE_VERSION", "v1.0.0").strip(),
            postgres_url=postgres_url,
            shop_db_url=_env("OPS_SHOP_DB_URL", f"sqlite:///{demo_dir / 'shop.sqlite'}"),
            marketing_api_url=_env("OPS_MARKETING_API_URL", demo_api).rstrip("/"),
            # no default token: the demo (package ops_demo) sets its own in its environment
            marketing_api_token=_env("OPS_MARKETING_API_TOKEN", ""),
            support_api_url=_env("OPS_SUPPORT_API_URL", demo_api).rstrip("/"),
            support_api_token=_env("OPS_SUPPORT_API_TOKEN", ""),
            support_dialect=_choice("OPS_SUPPORT_DIALECT", "generic", SUPPORT_DIALECTS),
            sales_dialect=_choice("OPS_SALES_DIALECT", "sql", SALES_DIALECTS),
            zendesk_email=_env("OPS_ZENDESK_EMAIL", ""),
            shop_api_url=_env("OPS_SHOP_API_URL", demo_api).rstrip("/"),
            shop_api_token=_env("OPS_SHOP_API_TOKEN", ""),
            shopify_api_version=_env("OPS_SHOPIFY_API_VERSION", "2026-10"),
            ad_platforms=_choices("OPS_AD_PLATFORMS", "generic", AD_PLATFORMS),
            google_ads_api_url=_env("OPS_GOOGLE_ADS_API_URL", demo_api).rstrip("/"),
            google_ads_oauth_url=_env("OPS_GOOGLE_ADS_OAUTH_URL", f"{demo_api}/token"),
            google_ads_api_version=_version("OPS_GOOGLE_ADS_API_VERSION", "v23", r"v\d+"),
            google_ads_client_id=_env("OPS_GOOGLE_ADS_CLIENT_ID", ""),
            google_ads_client_secret=_env("OPS_GOOGLE_ADS_CLIENT_SECRET", ""),
            google_ads_refresh_token=_env("OPS_GOOGLE_ADS_REFRESH_TOKEN", ""),
            google_ads_developer_token=_env("OPS_GOOGLE_ADS_DEVELOPER_TOKEN", ""),
            meta_api_url=_env("OPS_META_API_URL", demo_api).rstrip("/"),
            meta_api_version=_version("OPS_META_API_VERSION", "v24.0", r"v\d+\.\d+"),
            meta_access_token=_env("OPS_META_ACCESS_TOKEN", ""),
            signups_dialect=_choice("OPS_SIGNUPS_DIALECT", "generic", SIGNUPS_DIALECTS),
            hubspot_api_url=_env("OPS_HUBSPOT_API_URL", demo_api).rstrip("/"),
            hubspot_token=_env("OPS_HUBSPOT_TOKEN", ""),
            mapping_file=Path(_env("OPS_MAPPING_FILE", ""))
            if _env("OPS_MAPPING_FILE", "")
            else None,
            landing_dir=Path(_env("OPS_LANDING_DIR", str(demo_dir / "landing"))),
            demo_dir=demo_dir,
            demo_seed=_parsed("OPS_DEMO_SEED", "42", int, "a whole number"),
            demo_scale=_parsed("OPS_DEMO_SCALE", "1", float, "a number"),
            demo_until=_parsed(
                "OPS_DEMO_UNTIL", "2026-11-22", date.fromisoformat, "a date (YYYY-MM-DD)"
            ),
            demo_port=demo_port,
            airflow_host=airflow_host,
            business_tz=_env("OPS_BUSINESS_TZ", "UTC").strip(),
            reporting_currency=_currency_code(_env("OPS_REPORTING_CURRENCY", "USD")),
            ad_lookback_days=_parsed("OPS_AD_LOOKBACK_DAYS", "3", int, "a whole number of days"),
            page_size=_parsed("OPS_PAGE_SIZE", "10000", int, "a whole number"),
            http_timeout_s=_parsed("OPS_HTTP_TIMEOUT_S", "30", float, "a number of seconds"),
            http_max_attempts=_parsed("OPS_HTTP_MAX_ATTEMPTS", "8", int, "a whole number"),
            http_backoff_max_s=_parsed(
                "OPS_HTTP_BACKOFF_MAX_S", "20", float, "a number of seconds"
            ),
            dlt_dir=Path(_env("OPS_DLT_DIR", str(home / "dlt"))),
            dbt_target=_env("OPS_DBT_TARGET", warehouse),
            duckdb_memory_limit=_env("OPS_DUCKDB_MEMORY_LIMIT", "60%"),
            full_rebuild_weekdays=_parsed(
                "OPS_FULL_REBUILD_DAYS",
                "sun",
                _weekdays,
                "weekday names, comma separated (e.g. 'sun' or 'sat,sun'), 'all' or 'none'",
            ),
            freshness_hours=_parsed("OPS_FRESHNESS_HOURS", "48", float, "a number of hours"),
            volume_tolerance=_parsed(
                "OPS_VOLUME_TOLERANCE", "0.2", float, "a number (a share, e.g. 0.2)"
            ),
            published_postgres_url=_env(
                "OPS_PUBLISHED_POSTGRES_URL", _published_database(postgres_url)
            ),
            quarantine_threshold=_parsed(
                "OPS_QUARANTINE_THRESHOLD", "0.01", float, "a number (a share, e.g. 0.01)"
            ),
            row_drop_tolerance=_parsed(
                "OPS_ROW_DROP_TOLERANCE", "0.005", float, "a number (a share, e.g. 0.005)"
            ),
            closed_period_days=_parsed(
                "OPS_CLOSED_PERIOD_DAYS", "90", int, "a whole number of days"
            ),
            closed_period_tolerance=_parsed(
                "OPS_CLOSED_PERIOD_TOLERANCE", "0.01", float, "a number (a share, e.g. 0.01)"
            ),
            alert_emails=_addresses(_env("OPS_ALERT_EMAILS", "")),
            smtp_conn_id=_env("OPS_SMTP_CONN_ID", "smtp_default"),
            alert_webhook_url=_env("OPS_ALERT_WEBHOOK_URL", ""),
            reports_dir=Path(_env("OPS_REPORTS_DIR", str(home / "reports"))),
            docs_base_url=_env(
                "OPS_DOCS_BASE_URL", f"http://{served_host}:{airflow_port}/ops"
            ).rstrip("/"),
            report_language=_report_language(_env("OPS_REPORT_LANGUAGE", "en")),
            weekly_report_recipients=_addresses(_env("OPS_WEEKLY_REPORT_TO", "")),
            daily_digest_recipients=_addresses(_env("OPS_DAILY_DIGEST_TO", "")),
            anomaly_sigma=_parsed("OPS_ANOMALY_SIGMA", "2.5", float, "a number"),
            report_send_attempts=_parsed("OPS_REPORT_SEND_ATTEMPTS", "3", int, "a whole number"),
            parquet_export_dir=(
                Path(_env("OPS_PARQUET_EXPORT_DIR", ""))
                if _env("OPS_PARQUET_EXPORT_DIR", "")
                else None
            ),
            bi_reader_password=_env("OPS_BI_READER_PASSWORD", ""),
            superset_port=_parsed("OPS_SUPERSET_PORT", "8088", int, "a port number"),
            raw_archive_dir=_env("OPS_RAW_ARCHIVE_DIR", ""),
            spark_thrift_host=_env("OPS_SPARK_THRIFT_HOST", "127.0.0.1"),
            spark_thrift_port=_parsed("OPS_SPARK_THRIFT_PORT", "10000", int, "a port number"),
            spark_user=_env("OPS_SPARK_USER", "ops"),
            spark_lake_dir=Path(_env("OPS_SPARK_LAKE_DIR", str(home / "spark" / "lake"))),
        )

    def redacted(self) -> dict[str, str]:
        """Settings as printable strings, with every secret masked (``redact``)."""
        out = {}
        for f in fields(self):
            value = str(getattr(self, f.name))
            if _is_secret_field(f.name):
                value = redact.MASK if value else ""
            elif "webhook" in f.name and value:
                # chat webhooks carry their secret in the path
                value = "/".join(value.split("/")[:3]) + "/" + redact.MASK
            out[f.name] = redact.redact(value)
        out["raw_archive_dir"] = redact.redact(self.raw_archive_url or "off")
        return out


REPORT_LANGUAGES = ("en", "zh-CN")
# a setting whose whole value is a secret has one of these words in its name
SECRET_FIELD_WORDS = ("token", "password", "secret")


def _is_secret_field(name: str) -> bool:
    return any(word in name for word in SECRET_FIELD_WORDS)


SUPPORT_DIALECTS = ("generic", "zendesk")
SALES_DIALECTS = ("sql", "shopify")
AD_PLATFORMS = ("generic", "google_ads", "meta_ads")
SIGNUPS_DIALECTS = ("generic", "hubspot")


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default)
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _choices(name: str, default: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list of distinct names out of ``allowed``, at least one."""
    names = [part.strip() for part in _env(name, default).split(",") if part.strip()]
    if not names or set(names) - set(allowed) or len(set(names)) < len(names):
        raise SettingsError(
            f"{name} must be a comma-separated list of distinct names out of "
            f"{', '.join(allowed)}, not {_env(name, default)!r}"
        )
    return tuple(names)


def _version(name: str, default: str, pattern: str) -> str:
    """An API version of the form ``pattern``; its default is the example given."""
    value = _env(name, default).strip()
    if not re.fullmatch(pattern, value):
        raise SettingsError(f"{name} must be an API version such as {default}, not {value!r}")
    return value


def _report_language(value: str) -> str:
    if value not in REPORT_LANGUAGES:
        raise SettingsError(f"OPS_REPORT_LANGUAGE must be one of {REPORT_LANGUAGES}, not {value!r}")
    return value


# ISO 4217 codes of the currencies in circulation (funds, precious metals and test codes
# left out: no business reports in them).
ISO_4217_CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF
    YER ZAR ZMW ZWG ZWL
    """.split()
)

# what DuckDB accepts as a memory limit: a size with a unit, or a share of the RAM
_MEMORY_LIMIT = re.compile(
    r"^\d+(\.\d+)?\s*(%|b|bytes?|[kmgt]i?b?|(kilo|mega|giga|tera)bytes?)$", re.IGNORECASE
)


# DuckDB's storage_version option: a release name; DuckDB itself refuses one it does not know
_STORAGE_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


def _currency_code(value: str) -> str:
    """``eur`` reads as ``EUR``; anything but three letters is left as given for the check."""
    code = value.strip()
    return code.upper() if len(code) == 3 and code.isascii() and code.isalpha() else value


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    from zoneinfo import available_timezones

    return frozenset(available_timezones())


def _validate(s: Settings) -> None:
    """Refuse values the pipeline cannot use, naming the setting; a value that may hold a
    secret is shown redacted."""
    if s.business_tz not in _time_zones():
        raise SettingsError(
            "OPS_BUSINESS_TZ must be an IANA time zone name such as UTC or Europe/Berlin, "
            f"not {s.business_tz!r}"
        )
    if s.reporting_currency not in ISO_4217_CURRENCIES:
        raise SettingsError(
            "OPS_REPORTING_CURRENCY must be an ISO 4217 currency code such as USD or EUR, "
            f"not {s.reporting_currency!r}"
        )
    if not _MEMORY_LIMIT.match(s.duckdb_memory_limit):
        raise SettingsError(
            "OPS_DUCKDB_MEMORY_LIMIT must be a size such as 8GB or 500MB, or a share of the "
            f"memory such as 60%, not {s.duckdb_memory_limit!r}"
        )
    if not _STORAGE_VERSION.match(s.published_storage_version):
        raise SettingsError(
            "OPS_PUBLISHED_STORAGE_VERSION must be a DuckDB version such as v1.0.0 (the oldest "
            f"DuckDB that must open the published file), not {s.published_storage_version!r}"
        )
    web = ("http", "https")
    _check_url("OPS_MARKETING_API_URL", s.marketing_api_url, web)
    _check_url("OPS_SUPPORT_API_URL", s.support_api_url, web)
    _check_url("OPS_SHOP_API_URL", s.shop_api_url, web)
    _check_url("OPS_GOOGLE_ADS_API_URL", s.google_ads_api_url, web)
    _check_url("OPS_GOOGLE_ADS_OAUTH_URL", s.google_ads_oauth_url, web)
    _check_url("OPS_META_API_URL", s.meta_api_url, web)
    _check_url("OPS_HUBSPOT_API_URL", s.hubspot_api_url, web)
    if s.alert_webhook_url:
        _check_url("OPS_ALERT_WEBHOOK_URL", s.alert_webhook_url, web)
    if s.docs_base_url:
        _check_url("OPS_DOCS_BASE_URL", s.docs_base_url, web)
        if "@" in urlsplit(s.docs_base_url).netloc:
            # it becomes the links of every alert and report
            raise SettingsError(
                "OPS_DOCS_BASE_URL must carry no user or password (readers sign in to "
                f"Airflow; the URL is written into alerts and reports): {_shown_url(s.docs_base_url)}"
            )
    postgres = ("postgresql",)
    _check_url("OPS_POSTGRES_URL", s.postgres_url, postgres, database=True)
    _check_url("OPS_PUBLISHED_POSTGRES_URL", s.published_postgres_url, postgres, database=True)
    _check_url("OPS_SHOP_DB_URL", s.shop_db_url, None, database=True)


# SQLAlchemy URLs of an embedded database name a file, not a host
_FILE_DATABASES = ("sqlite", "duckdb")


def _check_url(
    setting: str, url: str, schemes: tuple[str, ...] | None, *, database: bool = False
) -> None:
    """A well-formed URL: one of ``schemes`` (before any ``+driver``), a host, and with
    ``database`` a database name (an embedded database's file instead of the host)."""
    shown = _shown_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise SettingsError(f"{setting} is not a well-formed URL ({exc}): {shown}") from None
    scheme = parts.scheme.lower().split("+", 1)[0]
    if not scheme or "://" not in url or (schemes and scheme not in schemes):
        expected = " or ".join(f"{s}://" for s in schemes or ("a scheme",))
        raise SettingsError(f"{setting} must start with {expected}: {shown}")
    name = parts.path.lstrip("/")
    if scheme in _FILE_DATABASES:
        if not name:
            raise SettingsError(f"{setting} names no database file: {shown}")
        return
    if not parts.hostname:
        raise SettingsError(f"{setting} names no host: {shown}")
    if database and not name:
        raise SettingsError(f"{setting} names no database: {shown}")


def _shown_url(url: str) -> str:
    """A URL for an error message: redacted, and whatever precedes an ``@`` masked even when
    the URL is too malformed for the patterns to find its user info."""
    if "@" in url:
        head, _, rest = url.partition("://") if "://" in url else ("", "", url)
        url = (f"{head}://" if head else "") + f"{redact.MASK}@{rest.rsplit('@', 1)[1]}"
    return repr(redact.redact(url))


def _addresses(value: str) -> tuple[str, ...]:
    """A comma-separated list of email addresses as a tuple, blanks dropped."""
    return tuple(a.strip() for a in value.split(",") if a.strip())


def _published_database(postgres_url: str) -> str:
    """The working database's URL with ``_published`` appended to the database name."""
    base, _, query = postgres_url.partition("?")
    return f"{base}_published" + (f"?{query}" if query else "")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
