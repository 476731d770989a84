"""One settings object for the whole project, read once from ``OPS_*`` environment variables.

Every path, URL, token and business setting lives here; nothing else in the code base
spells one out. The README's settings table documents each field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from datetime import date
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: str
    warehouse_path: Path
    published_path: Path
    postgres_url: str
    shop_db_url: str
    marketing_api_url: str
    marketing_api_token: str
    support_api_url: str
    support_api_token: str
    landing_dir: Path
    demo_dir: Path
    demo_seed: int
    demo_scale: float
    demo_until: date
    demo_port: int
    business_tz: str
    reporting_currency: str
    ad_lookback_days: int
    page_size: int
    http_timeout_s: float
    http_max_attempts: int
    http_backoff_max_s: float
    dlt_dir: Path
    dbt_target: str
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
    # as given: a folder or fsspec URL, "off", or "" for raw_archive under home (raw_archive_url)
    raw_archive_dir: str

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
        demo_port = int(_env("OPS_DEMO_PORT", "8765"))
        demo_api = f"http://127.0.0.1:{demo_port}"
        warehouse = _env("OPS_WAREHOUSE", "duckdb")
        if warehouse not in ("duckdb", "postgres"):
            raise ValueError(f"OPS_WAREHOUSE must be 'duckdb' or 'postgres', not {warehouse!r}")
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
            postgres_url=postgres_url,
            shop_db_url=_env("OPS_SHOP_DB_URL", f"sqlite:///{demo_dir / 'shop.sqlite'}"),
            marketing_api_url=_env("OPS_MARKETING_API_URL", demo_api).rstrip("/"),
            # no default token: the demo (package ops_demo) sets its own in its environment
            marketing_api_token=_env("OPS_MARKETING_API_TOKEN", ""),
            support_api_url=_env("OPS_SUPPORT_API_URL", demo_api).rstrip("/"),
            support_api_token=_env("OPS_SUPPORT_API_TOKEN", ""),
            landing_dir=Path(_env("OPS_LANDING_DIR", str(demo_dir / "landing"))),
            demo_dir=demo_dir,
            demo_seed=int(_env("OPS_DEMO_SEED", "42")),
            demo_scale=float(_env("OPS_DEMO_SCALE", "1")),
            demo_until=date.fromisoformat(_env("OPS_DEMO_UNTIL", "2026-11-22")),
            demo_port=demo_port,
            business_tz=_env("OPS_BUSINESS_TZ", "UTC"),
            reporting_currency=_env("OPS_REPORTING_CURRENCY", "USD"),
            ad_lookback_days=int(_env("OPS_AD_LOOKBACK_DAYS", "3")),
            page_size=int(_env("OPS_PAGE_SIZE", "1000")),
            http_timeout_s=float(_env("OPS_HTTP_TIMEOUT_S", "30")),
            http_max_attempts=int(_env("OPS_HTTP_MAX_ATTEMPTS", "8")),
            http_backoff_max_s=float(_env("OPS_HTTP_BACKOFF_MAX_S", "20")),
            dlt_dir=Path(_env("OPS_DLT_DIR", str(home / "dlt"))),
            dbt_target=_env("OPS_DBT_TARGET", warehouse),
            duckdb_memory_limit=_env("OPS_DUCKDB_MEMORY_LIMIT", "60%"),
            freshness_hours=float(_env("OPS_FRESHNESS_HOURS", "48")),
            volume_tolerance=float(_env("OPS_VOLUME_TOLERANCE", "0.2")),
            published_postgres_url=_env(
                "OPS_PUBLISHED_POSTGRES_URL", _published_database(postgres_url)
            ),
            quarantine_threshold=float(_env("OPS_QUARANTINE_THRESHOLD", "0.01")),
            row_drop_tolerance=float(_env("OPS_ROW_DROP_TOLERANCE", "0.005")),
            closed_period_days=int(_env("OPS_CLOSED_PERIOD_DAYS", "90")),
            closed_period_tolerance=float(_env("OPS_CLOSED_PERIOD_TOLERANCE", "0.01")),
            alert_emails=_addresses(_env("OPS_ALERT_EMAILS", "")),
            smtp_conn_id=_env("OPS_SMTP_CONN_ID", "smtp_default"),
            alert_webhook_url=_env("OPS_ALERT_WEBHOOK_URL", ""),
            reports_dir=Path(_env("OPS_REPORTS_DIR", str(home / "reports"))),
            docs_base_url=_env("OPS_DOCS_BASE_URL", "").rstrip("/"),
            report_language=_report_language(_env("OPS_REPORT_LANGUAGE", "en")),
            weekly_report_recipients=_addresses(_env("OPS_WEEKLY_REPORT_TO", "")),
            daily_digest_recipients=_addresses(_env("OPS_DAILY_DIGEST_TO", "")),
            anomaly_sigma=float(_env("OPS_ANOMALY_SIGMA", "2.5")),
            report_send_attempts=int(_env("OPS_REPORT_SEND_ATTEMPTS", "3")),
            parquet_export_dir=(
                Path(_env("OPS_PARQUET_EXPORT_DIR", ""))
                if _env("OPS_PARQUET_EXPORT_DIR", "")
                else None
            ),
            bi_reader_password=_env("OPS_BI_READER_PASSWORD", ""),
            raw_archive_dir=_env("OPS_RAW_ARCHIVE_DIR", ""),
        )

    def redacted(self) -> dict[str, str]:
        """Settings as printable strings, with tokens and passwords masked."""
        out = {}
        for f in fields(self):
            value = str(getattr(self, f.name))
            if "token" in f.name or "password" in f.name:
                value = "***" if value else ""
            elif "webhook" in f.name and value:
                # chat webhooks carry their secret in the path
                value = "/".join(value.split("/")[:3]) + "/***"
            elif "url" in f.name and "@" in value and ":" in value.split("@")[0].split("//")[-1]:
                scheme, rest = value.split("//", 1)
                value = f"{scheme}//***@{rest.split('@', 1)[1]}"
            out[f.name] = value
        out["raw_archive_dir"] = self.raw_archive_url or "off"
        return out


REPORT_LANGUAGES = ("en", "zh-CN")


def _report_language(value: str) -> str:
    if value not in REPORT_LANGUAGES:
        raise ValueError(f"OPS_REPORT_LANGUAGE must be one of {REPORT_LANGUAGES}, not {value!r}")
    return value


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
