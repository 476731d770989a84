"""The closing summary of `ops-demo` (`make demo`) names the warehouses the run really used,
on either engine."""

from __future__ import annotations

import dataclasses
from datetime import date

from ops_demo.run import summary_text
from ops_warehouse.settings import Settings


def summary(settings: Settings) -> str:
    return summary_text(
        settings,
        until=date(2026, 11, 22),
        seconds=42.4,
        log_path=settings.home / "logs" / "demo.log",
        reports="",
    )


def test_duckdb_summary_names_the_files(tmp_path):
    s = dataclasses.replace(
        Settings.from_env(),
        home=tmp_path,
        warehouse="duckdb",
        warehouse_path=tmp_path / "w" / "working.duckdb",
        published_path=tmp_path / "w" / "published.duckdb",
    )
    text = summary(s)
    assert "Pipeline ran for the day 2026-11-22 in 42 s." in text
    assert f"Working warehouse: {tmp_path / 'w' / 'working.duckdb'}\n" in text
    assert f"read-only): {tmp_path / 'w' / 'published.duckdb'}\n" in text
    assert f"`duckdb -readonly {tmp_path / 'w' / 'published.duckdb'}`" in text
    assert "postgresql://" not in text


def test_postgres_summary_names_the_databases_with_passwords_masked(tmp_path):
    s = dataclasses.replace(
        Settings.from_env(),
        home=tmp_path,
        warehouse="postgres",
        postgres_url="postgresql://ops:s3cret@db.example:6543/ops_warehouse",
        published_postgres_url="postgresql://ops:s3cret@db.example:6543/ops_warehouse_published",
    )
    text = summary(s)
    assert (
        "Working warehouse: postgresql://ops:***@db.example:6543/ops_warehouse (PostgreSQL)\n"
        in text
    )
    assert (
        "read-only): postgresql://ops:***@db.example:6543/ops_warehouse_published (PostgreSQL)\n"
        in text
    )
    assert "`psql -h db.example -p 6543 -U ops -d ops_warehouse_published`" in text
    assert "s3cret" not in text
    assert ".duckdb" not in text
    assert str(s.home / "logs" / "demo.log") in text
