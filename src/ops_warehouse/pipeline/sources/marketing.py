"""Marketing: the ad platforms' reporting API, the signup tracker, and the ops team's sheets."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from ops_warehouse.errors import SourceSchemaError
from ops_warehouse.pipeline.contracts import API_ENDPOINTS, Entity
from ops_warehouse.pipeline.sources.arrow_rows import Batch, rows_to_batch
from ops_warehouse.pipeline.sources.http_api import ApiClient
from ops_warehouse.pipeline.sources.window import Window, advance_cursor, cursor_lower_bound
from ops_warehouse.settings import Settings

# The earliest day an initial load asks the ad API for.
INITIAL_AD_DATE = date(2000, 1, 1)


def client(settings: Settings) -> ApiClient:
    return ApiClient(
        source="marketing",
        base_url=settings.marketing_api_url,
        token=settings.marketing_api_token,
        token_setting="OPS_MARKETING_API_TOKEN",
        url_setting="OPS_MARKETING_API_URL",
        settings=settings,
    )


def _pages(api: ApiClient, entity: Entity, params: dict[str, Any]) -> Iterator[list[dict]]:
    path, key = API_ENDPOINTS[entity.name]
    token = None
    while True:
        page = api.get(path, {**params, **({"page_token": token} if token else {})})
        yield page[key]
        token = page.get("next_page_token")
        if not token:
            return


def ad_window(state: dict[str, Any], window: Window, lookback_days: int) -> tuple[date, date]:
    """Days to (re)read: from the look-back before the last loaded day to the as-of date."""
    end = window.last_day
    last = state.get("last_date")
    if last is None:
        return INITIAL_AD_DATE, end
    start = date.fromisoformat(last) - timedelta(days=lookback_days - 1)
    return min(start, window.start.date()), end


def read_ad_performance(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[Batch]:
    start, end = ad_window(state, window, settings.ad_lookback_days)
    params = {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "page_size": settings.page_size,
    }
    for rows in _pages(api, entity, params):
        yield rows_to_batch(entity, rows, window.end)
    last = state.get("last_date")
    if last is None or end.isoformat() > last:
        state["last_date"] = end.isoformat()


def read_campaigns(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[Batch]:
    for rows in _pages(api, entity, {"page_size": settings.page_size}):
        yield rows_to_batch(entity, rows, window.end)


def read_signups(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[Batch]:
    lower = cursor_lower_bound(state, window)
    params: dict[str, Any] = {"page_size": settings.page_size}
    if lower is not None:
        params["updated_since"] = lower.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for rows in _pages(api, entity, params):
        batch = rows_to_batch(entity, rows, window.end)
        advance_cursor(state, batch.table, "updated_at")
        yield batch


def read_sheets(landing_dir: Path, entity: Entity, window: Window) -> Iterator[Batch]:
    """Every `<entity>_*.csv` in the landing folder, each row tagged with its file name.

    Which file wins for a month is decided in staging (the newest file covering it).
    """
    for path in sorted(landing_dir.glob(f"{entity.name}_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [f for f in entity.required_fields if f not in header]
            if missing:
                raise SourceSchemaError(
                    f"marketing.{entity.name}: file {path.name} has no column {missing[0]!r} "
                    f"(columns: {', '.join(header)}). Fix the sheet in {landing_dir}."
                )
            rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
        batch = rows_to_batch(entity, rows, window.end)
        names = pa.array([path.name] * batch.table.num_rows, pa.string())
        batch.table = batch.table.append_column("_file_name", names)
        reasons = [f"{r} (file {path.name})" for r in batch.quarantined["reason"].to_pylist()]
        batch.quarantined = batch.quarantined.set_column(
            batch.quarantined.schema.get_field_index("reason"),
            "reason",
            pa.array(reasons, pa.string()),
        )
        yield batch
