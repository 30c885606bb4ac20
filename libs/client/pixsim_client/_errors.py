"""Typed exceptions: one class per kind of failure, each carrying the API's error `code`."""

from __future__ import annotations

from typing import Any

import httpx


class PixSimError(Exception):
    """Every error this client raises."""


class APIConnectionError(PixSimError):
    """The API could not be reached (after the retries)."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """The request timed out (after the retries)."""


class APIStatusError(PixSimError):
    """The API answered 4xx/5xx. `code` and `message` are the API's `{"error": {code, message}}`."""

    status_code: int = 0

    def __init__(self, message: str, *, code: str, response: httpx.Response, body: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.response = response
        self.status_code = response.status_code
        self.body = body


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401: no valid API key (`PIXSIM_API_KEY` or `api_key=`)."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404: missing, or somebody else's."""


class ConflictError(APIStatusError):
    """409: e.g. cancelling a finished generation, or an Idempotency-Key reused with another body."""


class RequestTooLargeError(APIStatusError):
    """413."""


class UnprocessableEntityError(APIStatusError):
    """422: invalid parameters."""


class RateLimitError(APIStatusError):
    """429 (after the retries): over a rate or in-flight limit."""


class InternalServerError(APIStatusError):
    """5xx (after the retries)."""


class GenerationError(PixSimError):
    """`run()` saw the generation end `failed`, `filtered` or `cancelled`. `code` is the generation's
    error code (e.g. `content_filtered`); `generation` is the whole generation."""

    def __init__(self, generation: Any) -> None:
        error = generation.error or {}
        self.generation = generation
        self.status = generation.status
        self.code = error.get("code") or generation.status
        self.message = error.get("message") or ""
        super().__init__(f"generation {generation.id} {generation.status}: {self.code}: {self.message}")


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception for an error response (its body read)."""
    try:
        body = response.json()
        code, message = body["error"]["code"], body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        body = None
        code = f"http_{response.status_code}"
        message = response.text.strip()[:500] or response.reason_phrase
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(message, code=code, response=response, body=body)
