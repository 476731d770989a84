"""A JSON-over-HTTP client for the marketing and support APIs.

Retries 429 (honouring Retry-After), 5xx and timeouts with bounded exponential backoff,
using dlt's maintained retrying session; when the retries run out the source is unavailable
(a transient error). A missing token or a 401/403 is a configuration error, another 4xx a
request the API will refuse again: both fail at once naming the URL and what to fix.

Every page is checked before its rows go anywhere: at most ``PAGE_MAX_BYTES``, JSON, an
object holding the entity's key, whose value is a list of objects. A page that is not (an
HTML error page, truncated JSON, another shape) is a permanent ``SourceDataError`` naming the
source, entity and URL: the same request would get the same answer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from dlt.sources.helpers.requests import Client
from requests import HTTPError, Response
from requests.exceptions import ChunkedEncodingError, RetryError, Timeout
from requests.exceptions import ConnectionError as RequestsConnectionError

from ops_warehouse.errors import SourceConfigError, SourceDataError, SourceUnavailableError
from ops_warehouse.pipeline.contracts import API_ENDPOINTS, PAGE_MAX_BYTES, Entity
from ops_warehouse.pipeline.sources.arrow_rows import Origin
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)

# Statuses that ask to come back later: retried, then the source counts as unavailable.
TRANSIENT_STATUSES = frozenset({408, 425, 429})
# How much of a page that is not JSON an error shows.
SHOWN_BODY = 60


@dataclass(frozen=True)
class Page:
    """One checked page: the URL it was read from (query included) and its JSON object."""

    url: str
    body: dict[str, Any]
    rows: list[dict[str, Any]]


class ApiClient:
    def __init__(
        self,
        *,
        source: str,
        base_url: str,
        token: str,
        token_setting: str,
        url_setting: str,
        settings: Settings,
    ) -> None:
        if not token:
            raise SourceConfigError(
                f"{source} API token is not set: set {token_setting} to the bearer token of "
                f"the {source} API at {base_url} (the settings have no default token)."
            )
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.token_setting = token_setting
        self.url_setting = url_setting
        self._client = Client(
            request_timeout=settings.http_timeout_s,
            request_max_attempts=settings.http_max_attempts,
            request_backoff_factor=0.5,
            request_max_retry_delay=settings.http_backoff_max_s,
            respect_retry_after_header=True,
        )
        self._session = self._client.session
        self._session.headers["Authorization"] = f"Bearer {token}"
        self.requests_made = 0

    def origin(self, entity: Entity) -> Origin:
        """How quarantine reasons name where an entity's rows came from (no query: the same
        row keeps the same reason whichever page serves it)."""
        return Origin(f"GET {self.base_url}{API_ENDPOINTS[entity.name][0]}")

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One answer of the API, checked to be a JSON object."""
        return self._fetch(path, params, self.source).body

    def _fetch(self, path: str, params: dict[str, Any] | None, what: str) -> Page:
        """One answer, checked to be a JSON object; ``what`` names it in errors."""
        url = f"{self.base_url}{path}"
        self.requests_made += 1
        try:
            response = self._session.get(url, params=params)
        except HTTPError as exc:
            raise self._refused(exc, url, what) from None
        except (RequestsConnectionError, RetryError, Timeout, ChunkedEncodingError) as exc:
            raise SourceUnavailableError(
                f"{what}: the {self.source} API at {self.base_url} could not be reached after "
                f"retries ({exc.__class__.__name__}): check the setting {self.url_setting} "
                "and that the service is up."
            ) from exc
        return Page(response.url, _json_object(response, what), [])

    def page(self, entity: Entity, params: dict[str, Any] | None = None) -> Page:
        """One page of an entity's endpoint, with its rows checked to be a list of objects."""
        path, key = API_ENDPOINTS[entity.name]
        what = f"{entity.source}.{entity.name}"
        page = self._fetch(path, params, what)
        if key not in page.body:
            keys = ", ".join(map(repr, list(page.body)[:10])) or "none"
            raise SourceDataError(
                f"{what}: the page at {page.url} has no {key!r} key (keys: {keys}): it is not "
                "a page of the contract (docs/sources.md). The load stopped; nothing of this "
                "run was written."
            )
        rows = page.body[key]
        if not isinstance(rows, list):
            raise SourceDataError(
                f"{what}: {key!r} of the page at {page.url} is {_kind(rows)}, not a list of "
                "rows. The load stopped; nothing of this run was written."
            )
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise SourceDataError(
                    f"{what}: row {index + 1} of {key!r} on the page at {page.url} is "
                    f"{_kind(row)}, not an object. The load stopped; nothing of this run was "
                    "written."
                )
        return Page(page.url, page.body, rows)

    def _refused(self, exc: HTTPError, url: str, what: str) -> Exception:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return SourceConfigError(
                f"{what}: the {self.source} API refused the token ({status}) at {url}: check "
                f"the setting {self.token_setting}."
            )
        if status is not None and 400 <= status < 500 and status not in TRANSIENT_STATUSES:
            return SourceConfigError(
                f"{what}: the {self.source} API refused the request ({status}) at "
                f"{exc.response.url}: check the setting {self.url_setting} (the API's base "
                "URL) and that it speaks the contract of docs/sources.md."
            )
        return SourceUnavailableError(
            f"{what}: the {self.source} API answered {status} at {url} on every attempt "
            f"(retried): the service is overloaded or down; the next try may succeed."
        )


def _json_object(response: Response, what: str) -> dict[str, Any]:
    content = response.content
    stopped = "The load stopped; nothing of this run was written."
    if len(content) > PAGE_MAX_BYTES:
        raise SourceDataError(
            f"{what}: the page at {response.url} has {len(content):,} bytes, more than a page "
            f"may have ({PAGE_MAX_BYTES:,}): lower OPS_PAGE_SIZE. {stopped}"
        )
    try:
        body = json.loads(content)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        start = content[:SHOWN_BODY].decode("utf-8", "replace")
        kind = response.headers.get("Content-Type", "no content type")
        raise SourceDataError(
            f"{what}: the page at {response.url} is not JSON ({kind}, {len(content):,} bytes, "
            f"starting {start!r}): {str(exc)[:200]}. {stopped}"
        ) from None
    if not isinstance(body, dict):
        raise SourceDataError(
            f"{what}: the page at {response.url} is {_kind(body)}, not a JSON object. {stopped}"
        )
    return body


def _kind(value: Any) -> str:
    """What a JSON value is, for an error message."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
