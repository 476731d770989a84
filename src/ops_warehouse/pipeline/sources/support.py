"""Support: the helpdesk's REST API with its cursor-based incremental export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ops_warehouse.pipeline.contracts import API_ENDPOINTS, Entity
from ops_warehouse.pipeline.sources.arrow_rows import Batch, rows_to_batch
from ops_warehouse.pipeline.sources.http_api import ApiClient
from ops_warehouse.pipeline.sources.window import Window, advance_cursor, cursor_lower_bound
from ops_warehouse.settings import Settings


def client(settings: Settings) -> ApiClient:
    return ApiClient(
        source="support",
        base_url=settings.support_api_url,
        token=settings.support_api_token,
        token_setting="OPS_SUPPORT_API_TOKEN",
        url_setting="OPS_SUPPORT_API_URL",
        settings=settings,
    )


def read_incremental(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[Batch]:
    """Tickets, ticket events, time entries: every row at or after the stored cursor."""
    path, key = API_ENDPOINTS[entity.name]
    lower = cursor_lower_bound(state, window)
    params: dict[str, Any] = {
        "start_time": 0 if lower is None else int(lower.timestamp()),
        "page_size": settings.page_size,
    }
    while True:
        page = api.get(path, params)
        batch = rows_to_batch(entity, page[key], window.end)
        advance_cursor(state, batch.table, entity.cursor)
        yield batch
        if page.get("end_of_stream", True):
            return
        params = {"cursor": page["after_cursor"], "page_size": settings.page_size}


def read_agents(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[Batch]:
    path, key = API_ENDPOINTS[entity.name]
    yield rows_to_batch(entity, api.get(path)[key], window.end)
