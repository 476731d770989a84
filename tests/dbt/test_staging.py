"""dbt staging layer: build it on a small hand-made raw warehouse, on DuckDB and on PostgreSQL.

The raw fixture follows the loaders' contract (src/ops_warehouse/pipeline/contracts.py): one table
per entity in raw_<source>, the contract's fields plus _loaded_at / _load_id (and _file_name for
the landing sheets), dlt's bookkeeping columns, a drift column, two tables served as strings,
keys delivered twice and two budget / KPI-target files where the newer covers only some months.
Each target gets one `dbt build --select staging`; the tests read what it produced.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest
from sqlalchemy.engine import make_url

from ops_warehouse.pipeline.contracts import ENTITIES, Entity
from ops_warehouse.settings import PROJECT_ROOT, Settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

# Raw column type of each contract type, as the loaders write them.
RAW_TYPES = {
    "text": "varchar",
    "int": "bigint",
    "decimal": "decimal(18, 2)",
    "float": "double precision",
    "date": "date",
    "timestamp": "timestamp with time zone",
    "bool": "boolean",
}
# These raw tables hold every contract field as text, as a real source may serve strings:
# staging must cast them to the same types as the rest.
SERVED_AS_STRINGS = {"refunds", "ticket_events"}
# A new source field nobody asked for (schema drift): staging must neither fail nor pass it on.
DRIFT_COLUMN = ("orders", "coupon_code")

# Staging names of the contract fields that staging renames (all others keep their name).
RENAMED = {
    ("ad_performance", "date"): "date_day",
    ("campaigns", "status"): "campaign_status",
    ("tickets", "status"): "ticket_status",
    ("agents", "active"): "is_active",
    ("budget", "month"): "month_start",
    ("kpi_targets", "month"): "month_start",
}
MODEL_ENTITY = {"budget": "budgets"}  # raw table -> model entity where the plural reads better


def model_name(entity: Entity) -> str:
    return f"stg_{entity.source}__{MODEL_ENTITY.get(entity.name, entity.name)}"


# --- the raw fixture -------------------------------------------------------------------------


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


LOAD_1 = {"_loaded_at": ts("2025-03-01 06:00"), "_load_id": "load-1"}
LOAD_2 = {"_loaded_at": ts("2025-03-02 06:00"), "_load_id": "load-2"}
OLD_BUDGET = "budget_2025-01-01.csv"
NEW_BUDGET = "budget_2025-02-15.csv"
OLD_TARGETS = "kpi_targets_2025-01-01.csv"
NEW_TARGETS = "kpi_targets_2025-02-10.csv"


def _budget(file: str, month: str, channel: str, spend: str, load: dict) -> dict:
    row = {"month": month, "channel": channel, "planned_spend": Decimal(spend)}
    return {**row, "currency": "USD", "_file_name": file, **load}


def _target(file: str, month: str, kpi: str, target: float, load: dict) -> dict:
    return {"month": month, "kpi": kpi, "target": target, "_file_name": file, **load}


RAW_ROWS: dict[str, list[dict[str, Any]]] = {
    "ad_performance": [
        {
            "date": date(2025, 3, 1),
            "channel": "google_ads",
            "campaign_id": "gads-0001",
            "impressions": 1000,
            "clicks": 40,
            "spend": Decimal("10.00"),
            "currency": "USD",
            "platform_conversions": 3,
            **LOAD_1,
        },
        # the platform restated the day: the later load is current
        {
            "date": date(2025, 3, 1),
            "channel": "google_ads",
            "campaign_id": "gads-0001",
            "impressions": 1100,
            "clicks": 41,
            "spend": Decimal("12.34"),
            "currency": "USD",
            "platform_conversions": 4,
            **LOAD_2,
        },
        {
            "date": date(2025, 3, 1),
            "channel": "meta_ads",
            "campaign_id": "meta-0001",
            "impressions": 500,
            "clicks": 5,
            "spend": Decimal("7.50"),
            "currency": "EUR",
            "platform_conversions": 0,
            **LOAD_1,
        },
        {
            "date": date(2025, 3, 2),
            "channel": "google_ads",
            "campaign_id": "gads-0001",
            "impressions": 900,
            "clicks": 30,
            "spend": Decimal("9.99"),
            "currency": "USD",
            "platform_conversions": 2,
            **LOAD_2,
        },
    ],
    "campaigns": [
        {
            "campaign_id": "gads-0001",
            "campaign_name": "Spring search",
            "channel": "google_ads",
            "objective": "acquisition",
            "status": "active",
            "start_date": date(2025, 1, 1),
            "end_date": None,
            "daily_budget": Decimal("100.00"),
            "currency": "USD",
            "updated_at": ts("2025-02-01 09:00"),
            **LOAD_1,
        },
        # an older version delivered again by a later load: the newest updated_at wins
        {
            "campaign_id": "gads-0001",
            "campaign_name": "Spring search",
            "channel": "google_ads",
            "objective": "acquisition",
            "status": "paused",
            "start_date": date(2025, 1, 1),
            "end_date": None,
            "daily_budget": Decimal("80.00"),
            "currency": "USD",
            "updated_at": ts("2025-01-01 09:00"),
            **LOAD_2,
        },
        {
            "campaign_id": "meta-0001",
            "campaign_name": "Retarget",
            "channel": "meta_ads",
            "objective": "retargeting",
            "status": "ended",
            "start_date": date(2025, 2, 1),
            "end_date": date(2025, 3, 31),
            "daily_budget": Decimal("50.00"),
            "currency": "EUR",
            "updated_at": ts("2025-02-01 09:00"),
            **LOAD_1,
        },
    ],
    "signups": [
        {
            "signup_id": "s-1",
            "customer_id": "c-1",
            "email": "  Alice@Example.COM ",
            "signed_up_at": ts("2025-01-04 18:00"),
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": "gads-0001",
            "landing_page": "/spring",
            "updated_at": ts("2025-01-04 18:00"),
            **LOAD_1,
        },
        {
            "signup_id": "s-2",
            "customer_id": "c-2",
            "email": "bob@example.de",
            "signed_up_at": ts("2025-01-10 08:00"),
            "utm_source": None,
            "utm_medium": None,
            "utm_campaign": None,
            "landing_page": None,
            "updated_at": ts("2025-01-10 08:00"),
            **LOAD_1,
        },
    ],
    "budget": [
        # the January file plans Jan-Mar ...
        _budget(OLD_BUDGET, "2025-01", "google_ads", "1000.00", LOAD_1),
        _budget(OLD_BUDGET, "2025-01", "meta_ads", "500.00", LOAD_1),
        _budget(OLD_BUDGET, "2025-02", "google_ads", "1100.00", LOAD_1),
        _budget(OLD_BUDGET, "2025-02", "meta_ads", "550.00", LOAD_1),
        _budget(OLD_BUDGET, "2025-03", "google_ads", "1200.00", LOAD_1),
        _budget(OLD_BUDGET, "2025-03", "meta_ads", "600.00", LOAD_1),
        # ... the mid-February file re-plans Feb and Mar, and drops meta_ads from March
        _budget(NEW_BUDGET, "2025-02", "google_ads", "1500.00", LOAD_2),
        _budget(NEW_BUDGET, "2025-02", "meta_ads", "700.00", LOAD_2),
        _budget(NEW_BUDGET, "2025-03", "google_ads", "1600.00", LOAD_2),
    ],
    "kpi_targets": [
        _target(OLD_TARGETS, "2025-01", "net_revenue", 100000.0, LOAD_1),
        _target(OLD_TARGETS, "2025-01", "csat", 0.9, LOAD_1),
        _target(OLD_TARGETS, "2025-02", "net_revenue", 110000.0, LOAD_1),
        _target(OLD_TARGETS, "2025-02", "csat", 0.9, LOAD_1),
        _target(NEW_TARGETS, "2025-02", "net_revenue", 125000.5, LOAD_2),
    ],
    "customers": [
        {
            "customer_id": "c-1",
            "email": "Alice@Example.COM ",
            "full_name": "Alice Martin",
            "country": "US",
            "segment": "consumer",
            "created_at": ts("2025-01-04 18:00"),
            "updated_at": ts("2025-02-01 10:00"),
            **LOAD_1,
        },
        {
            "customer_id": "c-1",
            "email": "old@example.com",
            "full_name": "Alice Martin",
            "country": "US",
            "segment": "smb",
            "created_at": ts("2025-01-04 18:00"),
            "updated_at": ts("2025-01-04 18:00"),
            **LOAD_2,
        },
        {
            "customer_id": "c-2",
            "email": "bob@example.de",
            "full_name": "Bob Bauer",
            "country": "DE",
            "segment": "smb",
            "created_at": ts("2025-01-10 08:00"),
            "updated_at": ts("2025-01-10 08:00"),
            **LOAD_1,
        },
        {
            "customer_id": "c-3",
            "email": "li@example.cn",
            "full_name": "Li Wei",
            "country": "CN",
            "segment": "enterprise",
            "created_at": ts("2025-01-12 02:00"),
            "updated_at": ts("2025-01-12 02:00"),
            **LOAD_1,
        },
    ],
    "products": [
        {
            "product_id": "p-1",
            "sku": "SKU-1",
            "product_name": "Kettle",
            "category": "kitchen",
            "list_price": Decimal("20.00"),
            "unit_cost": Decimal("8.50"),
            "updated_at": ts("2024-12-01 00:00"),
            **LOAD_1,
        },
        {
            "product_id": "p-2",
            "sku": "SKU-2",
            "product_name": "Lamp",
            "category": "home",
            "list_price": Decimal("15.00"),
            "unit_cost": Decimal("6.25"),
            "updated_at": ts("2024-12-01 00:00"),
            **LOAD_1,
        },
    ],
    "orders": [
        {
            "order_id": "o-1",
            "customer_id": "c-1",
            "order_status": "shipped",
            "ordered_at": ts("2025-02-01 10:00"),
            "currency": "EUR",
            "subtotal": Decimal("40.00"),
            "discount": Decimal("5.00"),
            "shipping": Decimal("4.90"),
            "tax": Decimal("7.60"),
            "total": Decimal("47.50"),
            "updated_at": ts("2025-02-03 12:00"),
            "coupon_code": "SPRING",
            **LOAD_1,
        },
        # the paid version, replayed by a later load: older updated_at, so not current
        {
            "order_id": "o-1",
            "customer_id": "c-1",
            "order_status": "paid",
            "ordered_at": ts("2025-02-01 10:00"),
            "currency": "EUR",
            "subtotal": Decimal("40.00"),
            "discount": Decimal("5.00"),
            "shipping": Decimal("4.90"),
            "tax": Decimal("7.60"),
            "total": Decimal("47.50"),
            "updated_at": ts("2025-02-01 10:05"),
            "coupon_code": "SPRING",
            **LOAD_2,
        },
        {
            "order_id": "o-2",
            "customer_id": "c-2",
            "order_status": "refunded",
            "ordered_at": ts("2025-02-10 23:30"),
            "currency": "USD",
            "subtotal": Decimal("15.00"),
            "discount": Decimal("0.00"),
            "shipping": Decimal("0.00"),
            "tax": Decimal("1.20"),
            "total": Decimal("16.20"),
            "updated_at": ts("2025-02-20 08:00"),
            "coupon_code": None,
            **LOAD_1,
        },
        {
            "order_id": "o-3",
            "customer_id": "c-3",
            "order_status": "pending",
            "ordered_at": ts("2025-03-01 01:00"),
            "currency": "CNY",
            "subtotal": Decimal("140.00"),
            "discount": Decimal("0.00"),
            "shipping": Decimal("10.00"),
            "tax": Decimal("0.00"),
            "total": Decimal("150.00"),
            "updated_at": ts("2025-03-01 01:00"),
            "coupon_code": None,
            **LOAD_2,
        },
    ],
    "order_items": [
        {
            "order_item_id": "oi-1",
            "order_id": "o-1",
            "product_id": "p-1",
            "quantity": 2,
            "unit_price": Decimal("20.00"),
            "updated_at": ts("2025-02-01 10:00"),
            **LOAD_1,
        },
        {
            "order_item_id": "oi-2",
            "order_id": "o-2",
            "product_id": "p-2",
            "quantity": 1,
            "unit_price": Decimal("15.00"),
            "updated_at": ts("2025-02-10 23:30"),
            **LOAD_1,
        },
        {
            "order_item_id": "oi-3",
            "order_id": "o-3",
            "product_id": "p-1",
            "quantity": 7,
            "unit_price": Decimal("20.00"),
            "updated_at": ts("2025-03-01 01:00"),
            **LOAD_2,
        },
    ],
    "refunds": [
        {
            "refund_id": "r-1",
            "order_id": "o-2",
            "refunded_at": ts("2025-02-20 08:00"),
            "amount": Decimal("15.00"),
            "reason": "damaged",
            "updated_at": ts("2025-02-20 08:00"),
            **LOAD_1,
        },
        {
            "refund_id": "r-2",
            "order_id": "o-1",
            "refunded_at": ts("2025-02-25 14:15"),
            "amount": Decimal("5.25"),
            "reason": None,
            "updated_at": ts("2025-02-25 14:15"),
            **LOAD_2,
        },
    ],
    "fx_rates": [
        {"rate_date": date(2025, 2, 1), "currency": "USD", "rate_to_usd": 1.0, **LOAD_1},
        {"rate_date": date(2025, 2, 1), "currency": "EUR", "rate_to_usd": 1.08, **LOAD_1},
        # corrected by a later load
        {"rate_date": date(2025, 2, 1), "currency": "EUR", "rate_to_usd": 1.0825, **LOAD_2},
        {"rate_date": date(2025, 2, 1), "currency": "CNY", "rate_to_usd": 0.1372, **LOAD_1},
    ],
    "tickets": [
        {
            "ticket_id": 1,
            "requester_email": " ALICE@example.com",
            "subject": "Where is it?",
            "category": "delivery",
            "channel": "email",
            "priority": "high",
            "status": "open",
            "assignee_id": 10,
            "created_at": ts("2025-02-05 09:00"),
            "updated_at": ts("2025-02-05 11:00"),
            **LOAD_1,
        },
        {
            "ticket_id": 1,
            "requester_email": " ALICE@example.com",
            "subject": "Where is it?",
            "category": "delivery",
            "channel": "email",
            "priority": "high",
            "status": "new",
            "assignee_id": None,
            "created_at": ts("2025-02-05 09:00"),
            "updated_at": ts("2025-02-05 09:00"),
            **LOAD_2,
        },
        {
            "ticket_id": 2,
            "requester_email": "stranger@example.org",
            "subject": "Invoice",
            "category": "billing",
            "channel": "web",
            "priority": "low",
            "status": "solved",
            "assignee_id": 11,
            "created_at": ts("2025-02-06 09:00"),
            "updated_at": ts("2025-02-07 09:00"),
            **LOAD_1,
        },
    ],
    "ticket_events": [
        {
            "event_id": 100,
            "ticket_id": 1,
            "created_at": ts("2025-02-05 09:00"),
            "event_type": "created",
            "author_role": "end_user",
            "is_public": None,
            "new_status": None,
            "score": None,
            **LOAD_1,
        },
        {
            "event_id": 101,
            "ticket_id": 1,
            "created_at": ts("2025-02-05 10:30"),
            "event_type": "comment",
            "author_role": "agent",
            "is_public": True,
            "new_status": None,
            "score": None,
            **LOAD_1,
        },
        # the same event re-delivered by the next incremental export
        {
            "event_id": 101,
            "ticket_id": 1,
            "created_at": ts("2025-02-05 10:30"),
            "event_type": "comment",
            "author_role": "agent",
            "is_public": True,
            "new_status": None,
            "score": None,
            **LOAD_2,
        },
        {
            "event_id": 102,
            "ticket_id": 2,
            "created_at": ts("2025-02-07 09:00"),
            "event_type": "status_change",
            "author_role": "agent",
            "is_public": None,
            "new_status": "solved",
            "score": None,
            **LOAD_1,
        },
        {
            "event_id": 103,
            "ticket_id": 2,
            "created_at": ts("2025-02-08 12:00"),
            "event_type": "satisfaction_rated",
            "author_role": "end_user",
            "is_public": False,
            "new_status": None,
            "score": "good",
            **LOAD_1,
        },
    ],
    "agents": [
        {
            "agent_id": 10,
            "agent_name": "Ann",
            "team": "tier1",
            "hourly_cost": Decimal("30.00"),
            "currency": "USD",
            "active": True,
            **LOAD_1,
        },
        {
            "agent_id": 11,
            "agent_name": "Ben",
            "team": "tier2",
            "hourly_cost": Decimal("28.00"),
            "currency": "EUR",
            "active": True,
            **LOAD_1,
        },
        # agents are read whole: Ben left before the second load
        {
            "agent_id": 11,
            "agent_name": "Ben",
            "team": "tier2",
            "hourly_cost": Decimal("28.00"),
            "currency": "EUR",
            "active": False,
            **LOAD_2,
        },
    ],
    "time_entries": [
        {
            "time_entry_id": 1000,
            "ticket_id": 1,
            "agent_id": 10,
            "minutes": 15,
            "logged_at": ts("2025-02-05 10:30"),
            **LOAD_1,
        },
        {
            "time_entry_id": 1001,
            "ticket_id": 2,
            "agent_id": 11,
            "minutes": 40,
            "logged_at": ts("2025-02-07 09:00"),
            **LOAD_1,
        },
    ],
}

EXPECTED_ROW_COUNTS = {
    "stg_marketing__ad_performance": 3,
    "stg_marketing__campaigns": 2,
    "stg_marketing__signups": 2,
    "stg_marketing__budgets": 5,
    "stg_marketing__kpi_targets": 3,
    "stg_sales__customers": 3,
    "stg_sales__products": 2,
    "stg_sales__orders": 3,
    "stg_sales__order_items": 3,
    "stg_sales__refunds": 2,
    "stg_sales__fx_rates": 3,
    "stg_support__tickets": 2,
    "stg_support__ticket_events": 4,
    "stg_support__agents": 2,
    "stg_support__time_entries": 2,
}


def raw_columns(entity: Entity) -> list[tuple[str, str]]:
    """(name, SQL type) of the fixture's raw table: contract fields, load metadata, extras."""
    as_text = entity.name in SERVED_AS_STRINGS
    cols = [(f.name, "varchar" if as_text else RAW_TYPES[f.type]) for f in entity.fields]
    if entity.mode == "files":
        cols.append(("_file_name", "varchar"))
    cols += [("_loaded_at", RAW_TYPES["timestamp"]), ("_load_id", "varchar")]
    cols += [("_dlt_load_id", "varchar"), ("_dlt_id", "varchar")]
    if entity.name == DRIFT_COLUMN[0]:
        cols.append((DRIFT_COLUMN[1], "varchar"))
    return cols


def as_source_string(value: Any) -> str | None:
    """A value the way a JSON API serves it as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def raw_values(entity: Entity, row: dict[str, Any], columns: list[str]) -> tuple:
    values = []
    for name in columns:
        if name == "_dlt_load_id":
            values.append(row["_load_id"])
        elif name == "_dlt_id":
            values.append(uuid.uuid4().hex)
        elif entity.name in SERVED_AS_STRINGS and name in entity.field_names:
            values.append(as_source_string(row[name]))
        else:
            values.append(row[name])
    return tuple(values)


def write_raw(execute, executemany, placeholder: str, extra_rows: dict | None = None) -> None:
    """Create the raw schemas and tables and insert RAW_ROWS (plus extra_rows) through a DB-API."""
    for schema in sorted({e.raw_schema for e in ENTITIES}):
        execute(f"create schema {schema}")
    for entity in ENTITIES:
        cols = raw_columns(entity)
        names = [n for n, _ in cols]
        ddl = ", ".join(f"{n} {t}" for n, t in cols)
        execute(f"create table {entity.raw_schema}.{entity.name} ({ddl})")
        rows = RAW_ROWS[entity.name] + (extra_rows or {}).get(entity.name, [])
        marks = ", ".join([placeholder] * len(names))
        executemany(
            f"insert into {entity.raw_schema}.{entity.name} ({', '.join(names)}) values ({marks})",
            [raw_values(entity, r, names) for r in rows],
        )


def write_duckdb_raw(path: Path, extra_rows: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        write_raw(con.execute, con.executemany, "?", extra_rows)


# --- running dbt and reading what it built ---------------------------------------------------


@dataclass
class Build:
    target: str
    success: bool
    statuses: dict[str, tuple[str, str]]  # unique_id -> (resource type, status)
    manifest: dict
    tables: dict[str, list[dict[str, Any]]]  # model -> rows by column name (models built only)
    column_types: dict[str, list[tuple[str, str]]]  # model -> [(column, normalized type)]


def run_dbt(args: list[str], target: str, work_dir: Path):
    from dbt.cli.main import dbtRunner

    return dbtRunner().invoke(
        [
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target",
            target,
            "--target-path",
            str(work_dir / "target"),
            "--log-path",
            str(work_dir / "logs"),
        ]
    )


def statuses_of(result) -> dict[str, tuple[str, str]]:
    return {
        r.node.unique_id: (str(r.node.resource_type), str(r.status)) for r in result.result.results
    }


def staging_models() -> list[str]:
    return [model_name(e) for e in ENTITIES]


def normalize_type(data_type: str, precision: int | None = None, scale: int | None = None) -> str:
    """One spelling for a column type as DuckDB, PostgreSQL and the YAML docs write it."""
    t = data_type.lower().replace(" ", "")
    if t in ("numeric", "decimal") and precision is not None:
        t = f"numeric({precision},{scale})"
    return {
        "varchar": "text",
        "charactervarying": "text",
        "double": "doubleprecision",
        "float8": "doubleprecision",
        "timestamptz": "timestampwithtimezone",
        "decimal(18,2)": "numeric(18,2)",
    }.get(t, t)


def normalize_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def read_duckdb(path: Path) -> tuple[dict, dict]:
    tables, types = {}, {}
    with duckdb.connect(str(path)) as con:
        views = con.execute(
            "select table_name from information_schema.tables where table_schema = 'staging'"
        ).fetchall()
        built = {name for (name,) in views}
        for model in (m for m in staging_models() if m in built):
            cur = con.execute(f"select * from staging.{model}")
            names = [d[0] for d in cur.description]
            tables[model] = [
                {n: normalize_value(v) for n, v in zip(names, row, strict=True)}
                for row in cur.fetchall()
            ]
            types[model] = [
                (name, normalize_type(t))
                for name, t in con.execute(
                    "select column_name, data_type from information_schema.columns"
                    " where table_schema = 'staging' and table_name = ? order by ordinal_position",
                    [model],
                ).fetchall()
            ]
    return tables, types


def read_postgres(dsn: str) -> tuple[dict, dict]:
    tables, types = {}, {}
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(
            "select table_name from information_schema.tables where table_schema = 'staging'"
        )
        built = {r[0] for r in cur.fetchall()}
        for model in (m for m in staging_models() if m in built):
            cur.execute(f"select * from staging.{model}")
            names = [d[0] for d in cur.description]
            tables[model] = [
                {n: normalize_value(v) for n, v in zip(names, row, strict=True)}
                for row in cur.fetchall()
            ]
            cur.execute(
                "select column_name, data_type, numeric_precision, numeric_scale"
                " from information_schema.columns"
                " where table_schema = 'staging' and table_name = %s order by ordinal_position",
                [model],
            )
            types[model] = [(n, normalize_type(t, p, s)) for n, t, p, s in cur.fetchall()]
    con.close()
    return tables, types


def build(target: str, work_dir: Path, read) -> Build:
    # cautious: tests that also touch models downstream of staging are not part of this build
    result = run_dbt(
        ["build", "--select", "staging", "--indirect-selection", "cautious"], target, work_dir
    )
    assert result.exception is None, f"dbt build on {target} crashed: {result.exception}"
    manifest = json.loads((work_dir / "target" / "manifest.json").read_text())
    tables, types = read()
    return Build(target, result.success, statuses_of(result), manifest, tables, types)


def postgres_server() -> dict[str, str]:
    """The PostgreSQL server of the project's settings (OPS_POSTGRES_URL), as the profile's
    OPS_PG_* values; the tests create their scratch databases there."""
    url = make_url(Settings.from_env().postgres_url)
    return {
        "host": url.host or "127.0.0.1",
        "port": str(url.port or 5432),
        "user": url.username or "postgres",
        "password": url.password or "",
    }


PG = postgres_server()


def pg_dsn(dbname: str) -> str:
    return " ".join(f"{k}={v!r}" for k, v in {**PG, "dbname": dbname}.items())


@pytest.fixture(scope="module")
def duckdb_build(tmp_path_factory) -> Build:
    work_dir = tmp_path_factory.mktemp("dbt_duckdb")
    path = work_dir / "warehouse.duckdb"
    write_duckdb_raw(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPS_WAREHOUSE_PATH", str(path))
        return build("duckdb", work_dir, lambda: read_duckdb(path))


@pytest.fixture(scope="module")
def postgres_build(tmp_path_factory) -> Iterator[Build]:
    """The same raw fixture in a scratch PostgreSQL database, dropped afterwards."""
    dbname = f"ops_wh_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(pg_dsn("postgres"))
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG['host']}:{PG['port']} (user {PG['user']}) is not reachable: {exc}. "
            "Start it (e.g. `pg_ctlcluster 15 main start`) or point OPS_POSTGRES_URL at a server."
        )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"create database {dbname}")
    try:
        with psycopg2.connect(pg_dsn(dbname)) as con, con.cursor() as cur:
            write_raw(cur.execute, cur.executemany, "%s")
        con.close()
        work_dir = tmp_path_factory.mktemp("dbt_postgres")
        with pytest.MonkeyPatch.context() as mp:
            # the DuckDB path must not be needed to run on PostgreSQL
            mp.delenv("OPS_WAREHOUSE_PATH", raising=False)
            mp.setenv("OPS_PG_DATABASE", dbname)
            for key, value in PG.items():
                mp.setenv(f"OPS_PG_{key.upper()}", value)
            yield build("postgres", work_dir, lambda: read_postgres(pg_dsn(dbname)))
    finally:
        with admin.cursor() as cur:
            cur.execute(f"drop database if exists {dbname} with (force)")
        admin.close()


@pytest.fixture(params=["duckdb", "postgres"])
def built(request) -> Build:
    return request.getfixturevalue(f"{request.param}_build")


def rows_by_key(b: Build, model: str, *key: str) -> dict:
    return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r for r in b.tables[model]}


# --- the tests -------------------------------------------------------------------------------


def test_build_passes_every_model_and_test(built: Build):
    failed = {uid: s for uid, (_, s) in built.statuses.items() if s not in ("success", "pass")}
    assert not failed, f"on {built.target}: {failed}"
    assert built.success
    by_type = Counter(resource_type for resource_type, _ in built.statuses.values())
    assert by_type["model"] == len(ENTITIES)
    assert by_type["unit_test"] >= 3
    assert by_type["test"] >= 3 * len(ENTITIES)


def test_every_key_is_tested_unique_and_not_null(duckdb_build: Build):
    tests: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    for node in duckdb_build.manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if node["resource_type"] != "test" or not meta:
            continue
        model = node["attached_node"].split(".")[-1]
        columns = meta["kwargs"].get("combination_of_columns") or [node["column_name"]]
        tests.setdefault(model, set()).add((meta["name"], tuple(columns)))
    for entity in ENTITIES:
        key = tuple(RENAMED.get((entity.name, k), k) for k in entity.primary_key)
        model_tests = tests.get(model_name(entity), set())
        unique = ("unique", key) if len(key) == 1 else ("unique_combination_of_columns", key)
        assert unique in model_tests, f"{model_name(entity)}: no uniqueness test on {key}"
        for column in key:
            assert ("not_null", (column,)) in model_tests, f"{model_name(entity)}.{column}"


def test_one_table_per_raw_table_with_expected_rows(built: Build):
    assert {m: len(rows) for m, rows in built.tables.items()} == EXPECTED_ROW_COUNTS
    materialized = {
        n["name"]: n["config"]["materialized"]
        for n in built.manifest["nodes"].values()
        if n["resource_type"] == "model" and n["name"] in staging_models()
    }
    # tables on both: the dedup runs once per build, not once per reader; the tables that
    # grow are incremental tables (macros/incremental_staging.sql), the small ones rebuilt
    growing = {
        "stg_sales__orders",
        "stg_sales__order_items",
        "stg_sales__refunds",
        "stg_sales__customers",
        "stg_support__tickets",
        "stg_support__ticket_events",
        "stg_support__time_entries",
        "stg_marketing__signups",
    }
    assert materialized == {m: "incremental" if m in growing else "table" for m in staging_models()}


def test_latest_version_of_each_key_wins(built: Build):
    # newest updated_at wins even when an older version was loaded later
    assert rows_by_key(built, "stg_sales__orders", "order_id")["o-1"]["order_status"] == "shipped"
    assert rows_by_key(built, "stg_sales__customers", "customer_id")["c-1"]["segment"] == "consumer"
    campaign = rows_by_key(built, "stg_marketing__campaigns", "campaign_id")["gads-0001"]
    assert campaign["campaign_status"] == "active"
    assert campaign["daily_budget"] == Decimal("100.00")
    ticket = rows_by_key(built, "stg_support__tickets", "ticket_id")[1]
    assert (ticket["ticket_status"], ticket["assignee_id"]) == ("open", 10)
    # without updated_at the latest load wins
    ad = rows_by_key(built, "stg_marketing__ad_performance", "date_day", "campaign_id")
    restated = ad[(date(2025, 3, 1), "gads-0001")]
    assert (restated["spend"], restated["impressions"], restated["_load_id"]) == (
        Decimal("12.34"),
        1100,
        "load-2",
    )
    fx = rows_by_key(built, "stg_sales__fx_rates", "rate_date", "currency")
    assert fx[(date(2025, 2, 1), "EUR")]["rate_to_usd"] == pytest.approx(1.0825)
    assert rows_by_key(built, "stg_support__agents", "agent_id")[11]["is_active"] is False


def test_newest_file_wins_for_the_months_it_covers(built: Build):
    budgets = {
        (r["month_start"], r["channel"]): (r["planned_spend"], r["_file_name"])
        for r in built.tables["stg_marketing__budgets"]
    }
    assert budgets == {
        (date(2025, 1, 1), "google_ads"): (Decimal("1000.00"), OLD_BUDGET),
        (date(2025, 1, 1), "meta_ads"): (Decimal("500.00"), OLD_BUDGET),
        (date(2025, 2, 1), "google_ads"): (Decimal("1500.00"), NEW_BUDGET),
        (date(2025, 2, 1), "meta_ads"): (Decimal("700.00"), NEW_BUDGET),
        # the newer file has March without meta_ads: the older file's meta_ads row is gone
        (date(2025, 3, 1), "google_ads"): (Decimal("1600.00"), NEW_BUDGET),
    }
    targets = {
        (r["month_start"], r["kpi"]): (r["target"], r["_file_name"])
        for r in built.tables["stg_marketing__kpi_targets"]
    }
    assert targets == {
        (date(2025, 1, 1), "net_revenue"): (100000.0, OLD_TARGETS),
        (date(2025, 1, 1), "csat"): (0.9, OLD_TARGETS),
        (date(2025, 2, 1), "net_revenue"): (125000.5, NEW_TARGETS),
    }


def test_emails_are_normalized(built: Build):
    customer = rows_by_key(built, "stg_sales__customers", "customer_id")["c-1"]
    assert (customer["email"], customer["email_normalized"]) == (
        "Alice@Example.COM ",
        "alice@example.com",
    )
    signup = rows_by_key(built, "stg_marketing__signups", "signup_id")["s-1"]
    assert signup["email_normalized"] == "alice@example.com"
    ticket = rows_by_key(built, "stg_support__tickets", "ticket_id")[1]
    assert ticket["requester_email_normalized"] == "alice@example.com"


def test_values_served_as_strings_are_cast(built: Build):
    refund = rows_by_key(built, "stg_sales__refunds", "refund_id")["r-2"]
    assert refund["amount"] == Decimal("5.25")
    assert refund["refunded_at"] == datetime(2025, 2, 25, 14, 15, tzinfo=UTC)
    assert refund["reason"] is None
    events = rows_by_key(built, "stg_support__ticket_events", "event_id")
    assert events[101]["is_public"] is True
    assert events[103]["is_public"] is False
    assert events[102]["ticket_id"] == 2


def documented_columns(b: Build, model: str) -> list[tuple[str, str]]:
    node = b.manifest["nodes"][f"model.ops_warehouse.{model}"]
    return [(c["name"], normalize_type(c["data_type"])) for c in node["columns"].values()]


def test_columns_and_types_are_the_documented_ones(built: Build):
    """Each view has exactly the YAML's columns, in order, with the YAML's data_type."""
    for model in staging_models():
        assert built.column_types[model] == documented_columns(built, model), model
        node = built.manifest["nodes"][f"model.ops_warehouse.{model}"]
        assert all(c["description"].strip() for c in node["columns"].values()), model
        assert node["description"].strip(), model


def test_every_contract_field_is_staged_with_its_type(duckdb_build: Build):
    expected_type = {
        "text": "text",
        "int": "bigint",
        "decimal": "numeric(18,2)",
        "float": "doubleprecision",
        "date": "date",
        "timestamp": "timestampwithtimezone",
        "bool": "boolean",
    }
    for entity in ENTITIES:
        staged = dict(duckdb_build.column_types[model_name(entity)])
        for f in entity.fields:
            name = RENAMED.get((entity.name, f.name), f.name)
            want = "date" if name == "month_start" else expected_type[f.type]
            assert staged.get(name) == want, f"{entity.name}.{f.name} -> {name}"
        assert not [c for c in staged if c.startswith("_dlt") or c == DRIFT_COLUMN[1]]


def test_accepted_values_match_the_contract(duckdb_build: Build):
    tested: dict[tuple[str, str], set[str]] = {}
    for node in duckdb_build.manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if meta.get("name") == "accepted_values":
            model = node["attached_node"].split(".")[-1]
            tested[(model, node["column_name"])] = set(meta["kwargs"]["values"])
    for entity in ENTITIES:
        for field_name, allowed in (entity.allowed or {}).items():
            column = RENAMED.get((entity.name, field_name), field_name)
            assert tested.get((model_name(entity), column)) == set(allowed), (
                f"{model_name(entity)}.{column}: accepted_values differ from contracts.py"
            )


def test_postgres_output_equals_duckdb(duckdb_build: Build, postgres_build: Build):
    assert postgres_build.column_types == duckdb_build.column_types
    for model in staging_models():

        def ordered(rows):
            return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))

        assert ordered(postgres_build.tables[model]) == ordered(duckdb_build.tables[model]), model


def test_data_tests_catch_bad_staging_data(tmp_path, monkeypatch):
    """The tests are not decorative: a value outside the contract and a duplicated
    composite key both fail the build."""
    path = tmp_path / "warehouse.duckdb"
    bad_order = {**RAW_ROWS["orders"][2], "order_id": "o-9", "currency": "GBP"}
    write_duckdb_raw(path, extra_rows={"orders": [bad_order]})
    monkeypatch.setenv("OPS_WAREHOUSE_PATH", str(path))
    # cautious: leave out relationships tests whose other model this run does not build
    selection = [
        "--select",
        "stg_sales__orders",
        "stg_marketing__budgets",
        "--indirect-selection",
        "cautious",
    ]

    result = run_dbt(["build", *selection], "duckdb", tmp_path)
    failed = {uid for uid, (_, s) in statuses_of(result).items() if s not in ("success", "pass")}
    assert not result.success
    assert failed == {
        uid
        for uid in statuses_of(result)
        if uid.startswith("test.ops_warehouse.accepted_values_stg_sales__orders_currency")
    }

    # the model cannot yield a duplicate month x channel, so duplicate one by hand
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table staging.budgets_copy as select * from staging.stg_marketing__budgets"
        )
        con.execute(
            "create or replace table staging.stg_marketing__budgets as"
            " select * from staging.budgets_copy"
            " union all select * from staging.budgets_copy where channel = 'meta_ads'"
        )
    result = run_dbt(["test", "--select", "stg_marketing__budgets"], "duckdb", tmp_path)
    failed = {uid for uid, (_, s) in statuses_of(result).items() if s != "pass"}
    assert len(failed) == 1
    assert next(iter(failed)).startswith(
        "test.ops_warehouse.unique_combination_of_columns_stg_marketing__budgets"
    )
