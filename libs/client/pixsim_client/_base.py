"""What the sync and async clients share: configuration, headers, the retry policy, request bodies."""

from __future__ import annotations

import mimetypes
import os
import random
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any

import httpx

from ._errors import PixSimError

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: SSE: the gateway sends a keep-alive comment every 15 s, so a minute of silence means a dead connection.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
DEFAULT_MAX_RETRIES = 2
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
API_PREFIX = "/api/v1"

FileInput = str | os.PathLike[str] | bytes | IO[bytes]


class Config:
    def __init__(self, api_key: str | None, base_url: str | None, max_retries: int) -> None:
        self.api_key = api_key if api_key is not None else os.environ.get("PIXSIM_API_KEY")
        self.base_url = (base_url or os.environ.get("PIXSIM_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        if max_retries < 0:
            raise PixSimError("max_retries must be >= 0")
        self.max_retries = max_retries

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": "pixsim-client/0.1", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def retry_delay(attempt: int, response: httpx.Response | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): the server's `Retry-After` when it
    sent one (capped), else exponential backoff with jitter."""
    if response is not None and (after := response.headers.get("retry-after")):
        try:
            return min(max(float(after), 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            try:
                return min(
                    max(parsedate_to_datetime(after).timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S
                )
            except (TypeError, ValueError):
                pass
    return min(0.5 * 2 ** (attempt - 1), 8.0) * (0.75 + random.random() / 2)


def should_retry(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES


def generation_body(
    provider: str, operation: str, params: dict[str, Any] | None, extra: dict[str, Any]
) -> dict[str, Any]:
    body = {"provider_id": provider, "operation_type": operation, "params": params or {}}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def file_part(file: FileInput, filename: str | None, content_type: str | None) -> tuple[str, bytes, str]:
    """A multipart part (name, bytes, type) from a path, bytes or a binary file object. The bytes are
    held so that a retry can send them again."""
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        data, filename = path.read_bytes(), filename or path.name
    elif isinstance(file, bytes):
        data = file
    else:
        data = file.read()
        filename = filename or Path(getattr(file, "name", "") or "upload").name
    filename = filename or "upload"
    guessed = mimetypes.guess_type(filename)[0]
    return filename, data, content_type or guessed or "application/octet-stream"


def list_query(
    status: str | None, provider_id: str | None, limit: int | None, cursor: str | None
) -> dict[str, Any]:
    query = {"status": status, "provider_id": provider_id, "limit": limit, "cursor": cursor}
    return {k: v for k, v in query.items() if v is not None}
