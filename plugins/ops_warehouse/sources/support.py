"""Support: the helpdesk's REST API with its cursor-based incremental export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ops_warehouse.contracts import API_ENDPOINTS, Entity
from ops_warehouse.settings import Settings
from ops_warehouse.sources.arrow_rows import rows_to_arrow
from ops_warehouse.sources.http_api import ApiClient
from ops_warehouse.sources.window import Window, advance_cursor, before_end, cursor_lower_bound


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
) -> Iterator[pa.Table]:
    """Tickets, ticket events, time entries: every row at or after the stored cursor."""
    path, key = API_ENDPOINTS[entity.name]
    lower = cursor_lower_bound(state, window)
    params: dict[str, Any] = {
        "start_time": 0 if lower is None else int(lower.timestamp()),
        "page_size": settings.page_size,
    }
    while True:
        page = api.get(path, params)
        table = before_end(rows_to_arrow(entity, page[key]), entity.cursor, window)
        advance_cursor(state, table, entity.cursor)
        yield table
        if page.get("end_of_stream", True):
            return
        params = {"cursor": page["after_cursor"], "page_size": settings.page_size}


def read_agents(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[pa.Table]:
    path, key = API_ENDPOINTS[entity.name]
    yield rows_to_arrow(entity, api.get(path)[key])
