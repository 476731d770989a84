"""What every vendor adapter's HTTP client does with an answer, in one place: read a page as
a JSON object (bounded in size, a clear permanent error otherwise), say in a few words what
an error answer says, and read ``Retry-After``.

Each adapter keeps its own client (authentication, paging and throttling differ per
vendor) and names itself in errors with ``who``, e.g. ``"support (Zendesk)"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import requests

from ops_warehouse.errors import SourceDataError
from ops_warehouse.pipeline.contracts import PAGE_MAX_BYTES


def body_or_none(response: requests.Response) -> Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def json_page(response: requests.Response, url: str, who: str, hint: str = "") -> dict[str, Any]:
    """A successful answer as a JSON object; a page too large, not JSON or not an object is a
    permanent error naming ``who`` and the URL (``hint``: what the reader can do about it)."""
    size = len(response.content)
    if size > PAGE_MAX_BYTES:
        raise SourceDataError(
            f"{who}: {url} answered a page of {size:,} bytes, more than the "
            f"{PAGE_MAX_BYTES:,} accepted{hint or ': lower OPS_PAGE_SIZE'}."
        )
    body = body_or_none(response)
    if body is None:
        kind = response.headers.get("Content-Type", "no content type")
        start = response.content[:60].decode("utf-8", "replace")
        raise SourceDataError(
            f"{who}: {url} answered {response.status_code} with a body that is not JSON "
            f"({kind}, starting {start!r})."
        )
    if not isinstance(body, dict):
        raise SourceDataError(f"{who}: {url} answered JSON that is no object.")
    return body


def error_text(response: requests.Response, keys: Sequence[str], limit: int = 200) -> str:
    """What an error answer says, short whatever the body is: the values of ``keys`` in a
    JSON object, else a plain-text body, else the HTTP reason."""
    body = body_or_none(response)
    if isinstance(body, dict):
        text = ": ".join(str(body[k]) for k in keys if isinstance(body.get(k), str | int))
    else:
        kind = response.headers.get("Content-Type", "")
        text = response.text.strip() if kind.startswith("text/plain") else ""
    text = " ".join(text.split())
    return text[:limit] if text else response.reason or "no description"


def retry_after_seconds(response: requests.Response) -> float | None:
    """The seconds ``Retry-After`` asks for (None: absent or not a number of seconds)."""
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
