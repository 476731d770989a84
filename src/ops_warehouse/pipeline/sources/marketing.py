"""Marketing: the ad platforms' reporting API and the signup tracker (the ops team's sheets
are read by ``landing``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from ops_warehouse.errors import SourceDataError
from ops_warehouse.pipeline.contracts import Entity
from ops_warehouse.pipeline.sources.arrow_rows import Batch, rows_to_batch
from ops_warehouse.pipeline.sources.http_api import ApiClient, Page
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


def _pages(api: ApiClient, entity: Entity, params: dict[str, Any]) -> Iterator[Page]:
    """Every page, following ``next_page_token`` (a string; null or absent on the last page).
    A token that is neither, or one served before (paging that would never end), stops the
    load naming the page."""
    seen: set[str] = set()
    token = None
    while True:
        page = api.page(entity, {**params, **({"page_token": token} if token else {})})
        token = page.body.get("next_page_token")
        if token is not None and (not isinstance(token, str) or token in seen):
            problem = "is not a string" if not isinstance(token, str) else "was served before"
            raise SourceDataError(
                f"{entity.source}.{entity.name}: the next_page_token of the page at {page.url} "
                f"{problem} ({str(token)[:60]!r}): paging cannot go on. The load stopped; "
                "nothing of this run was written."
            )
        yield page
        if not token:
            return
        seen.add(token)


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
    for page in _pages(api, entity, params):
        yield rows_to_batch(entity, page.rows, window.end, api.origin(entity))
    last = state.get("last_date")
    if last is None or end.isoformat() > last:
        state["last_date"] = end.isoformat()


def read_campaigns(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[Batch]:
    for page in _pages(api, entity, {"page_size": settings.page_size}):
        yield rows_to_batch(entity, page.rows, window.end, api.origin(entity))


def read_signups(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[Batch]:
    lower = cursor_lower_bound(state, window)
    params: dict[str, Any] = {"page_size": settings.page_size}
    if lower is not None:
        params["updated_since"] = lower.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for page in _pages(api, entity, params):
        batch = rows_to_batch(entity, page.rows, window.end, api.origin(entity))
        advance_cursor(state, batch.table, "updated_at")
        yield batch
