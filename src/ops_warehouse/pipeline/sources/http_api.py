"""A JSON-over-HTTP client for the marketing and support APIs.

Retries 429 (honouring Retry-After), 5xx and timeouts with bounded exponential backoff,
using dlt's maintained retrying session. A missing token or a 401 is a configuration error:
it fails at once and names the setting to fix.
"""

from __future__ import annotations

import logging
from typing import Any

from dlt.sources.helpers.requests import Client
from requests import HTTPError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import RetryError

from ops_warehouse.errors import SourceConfigError, SourceUnavailableError
from ops_warehouse.settings import Settings

log = logging.getLogger(__name__)


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

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        self.requests_made += 1
        try:
            response = self._session.get(url, params=params)
        except HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise SourceConfigError(
                    f"{self.source} API refused the token ({status}) at {url}: "
                    f"check the setting {self.token_setting}."
                ) from None
            raise
        except (RequestsConnectionError, RetryError) as exc:
            raise SourceUnavailableError(
                f"{self.source} API at {self.base_url} could not be reached after "
                f"retries ({exc.__class__.__name__}): check the setting {self.url_setting} "
                "and that the service is up."
            ) from exc
        return response.json()
