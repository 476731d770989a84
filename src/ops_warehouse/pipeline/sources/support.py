"""Support: the helpdesk's REST API with its cursor-based incremental export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ops_warehouse.errors import SourceDataError
from ops_warehouse.pipeline.contracts import Entity
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
    """Tickets, ticket events, time entries: every row at or after the stored cursor.

    Every page must say whether the stream ends (``end_of_stream``, true or false) and, when
    it does not, where it goes on (``after_cursor``, a cursor not served before); a page that
    does not stops the load naming it, rather than end it early or page for ever."""
    lower = cursor_lower_bound(state, window)
    params: dict[str, Any] = {
        "start_time": 0 if lower is None else int(lower.timestamp()),
        "page_size": settings.page_size,
    }
    seen: set[str] = set()
    while True:
        page = api.page(entity, params)
        end, cursor = page.body.get("end_of_stream"), page.body.get("after_cursor")
        problem = None
        if not isinstance(end, bool):
            problem = f"its end_of_stream is {'missing' if end is None else repr(end)[:40]}"
        elif not end and (not isinstance(cursor, str) or not cursor):
            problem = "it is not the last page but has no after_cursor"
        elif not end and cursor in seen:
            problem = f"its after_cursor {cursor[:60]!r} was served before"
        if problem:
            raise SourceDataError(
                f"{entity.source}.{entity.name}: the page at {page.url} breaks the paging "
                f"protocol ({problem}; docs/sources.md): the load cannot tell where the stream "
                "goes on or ends. The load stopped; nothing of this run was written."
            )
        batch = rows_to_batch(entity, page.rows, window.end, api.origin(entity))
        advance_cursor(state, batch.table, entity.cursor)
        yield batch
        if end:
            return
        seen.add(cursor)
        params = {"cursor": cursor, "page_size": settings.page_size}


def read_agents(
    api: ApiClient, entity: Entity, state: dict, window: Window, settings: Settings
) -> Iterator[Batch]:
    yield rows_to_batch(entity, api.page(entity).rows, window.end, api.origin(entity))
