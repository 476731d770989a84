"""A warehouse loaded before the contract widened a column keeps every digit afterwards.

`platform_conversions` was a whole number; it is a decimal now. dlt keeps the type a column
was first loaded with and rounds new values into it, so the loader widens such columns (raw,
dlt's staging copy, dlt's schema) before it loads.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import dlt
import pyarrow as pa
import pytest

from ops_warehouse.pipeline.contracts import entity
from ops_warehouse.pipeline.loading import _pipeline, resource_hints, widen_to_contract
from ops_warehouse.warehouse.queries import query
from tests.conftest import drop_pg_database, scratch_pg_database

AD = entity("ad_performance")


def _rows(conversions: pa.Array) -> pa.Table:
    n = len(conversions)
    return pa.table(
        {
            "date": pa.array([date(2026, 11, 20 + i) for i in range(n)], pa.date32()),
            "channel": pa.array(["google_ads"] * n),
            "campaign_id": pa.array(["gads-0001"] * n),
            "impressions": pa.array([100] * n, pa.int64()),
            "clicks": pa.array([10] * n, pa.int64()),
            "spend": pa.array([Decimal("5.00")] * n, pa.decimal128(18, 2)),
            "currency": pa.array(["USD"] * n),
            "platform_conversions": conversions,
            "_loaded_at": pa.array([datetime(2026, 11, 23, tzinfo=UTC)] * n),
            "_load_id": pa.array(["old"] * n),
        }
    )


@pytest.fixture(params=["duckdb", "postgres"])
def engine_settings(request, settings):
    if request.param == "duckdb":
        yield settings
        return
    name = f"ops_test_widen_{request.node.name[-12:].strip('[]')}"
    url = scratch_pg_database(name)
    yield dataclasses.replace(settings, warehouse="postgres", postgres_url=url)
    drop_pg_database(name)


def test_an_old_whole_number_column_is_widened_and_keeps_fractions(engine_settings):
    settings = engine_settings
    pipeline = _pipeline("marketing", settings)
    old = _rows(pa.array([3, 4], pa.int64()))  # as loaded before the contract changed
    pipeline.run(dlt.resource(old, **resource_hints(AD)))
    assert (
        pipeline.default_schema.tables["ad_performance"]["columns"]["platform_conversions"][
            "data_type"
        ]
        == "bigint"
    )

    assert widen_to_contract(pipeline, settings, "marketing") == [
        "ad_performance.platform_conversions"
    ]
    assert widen_to_contract(pipeline, settings, "marketing") == [], "once only"

    new = _rows(pa.array([Decimal("2.50"), Decimal("1.25")], pa.decimal128(18, 2)))
    new = new.set_column(0, "date", pa.array([date(2026, 11, 21), date(2026, 11, 22)]))
    pipeline.run(dlt.resource(new, **resource_hints(AD)))
    rows = query(
        settings,
        "select date, platform_conversions from raw_marketing.ad_performance order by date",
    )
    assert [(d.isoformat(), Decimal(v)) for d, v in rows] == [
        ("2026-11-20", Decimal("3.00")),
        ("2026-11-21", Decimal("2.50")),
        ("2026-11-22", Decimal("1.25")),
    ]


def test_a_new_warehouse_needs_no_widening(settings):
    assert widen_to_contract(_pipeline("marketing", settings), settings, "marketing") == []
