"""Remaker's response envelope and its error codes -> the SDK's error classes.

Every JSON answer is `{"code": int, "message": {"en": str, "zh": str}, "result": {...}}`. Business
outcomes come back as HTTP 200 with a non-100000 `code`; only the session check (401/403), the rate
limiter in front of the API (429) and server failures (5xx) use HTTP status codes.
"""

from __future__ import annotations

from typing import Any

import httpx
from pixsim_provider_sdk import (
    AuthenticationError,
    ConcurrentLimitError,
    ContentFilteredError,
    InvalidParametersError,
    JobNotFoundError,
    ProviderError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    error_for_status,
    parse_retry_after,
    scrub,
)

CODE_OK = 100000
CODE_QUEUED = 100002  # get-job: accepted, waiting for a worker
CODE_AUTH = 100004  # HTTP 401: missing, invalid or expired session token
CODE_RATE_LIMITED = 100009  # HTTP 429
CODE_BAD_PARAM = 200001
CODE_BAD_IMAGE = 200002
CODE_NO_CREDITS = 200005
CODE_TASK_RUNNING = 200006  # the account already has as many jobs running as its plan allows
CODE_JOB_NOT_FOUND = 300002
CODE_PHOTO_EDITOR_PROCESSING = 300006
CODE_JOB_FAILED = 300007
CODE_PROMPT_EDITOR_PROCESSING = 300013
CODE_CONTENT_VIOLATION = 400000  # at create-job: the prompt/input; at get-job: the output
CODE_SERVER_ERROR = 500000


def remote_message(payload: Any) -> tuple[str, str | None]:
    """(English message, Chinese message) of an envelope; tolerant of a plain-string message."""
    message = payload.get("message") if isinstance(payload, dict) else None
    if isinstance(message, dict):
        return str(message.get("en") or message.get("zh") or ""), message.get("zh")
    return (str(message) if message else ""), None


def http_error(resp: httpx.Response, provider_id: str, secrets: list[str], *, job: bool) -> ProviderError:
    """The error for an HTTP status >= 400 (the body may be JSON, HTML from a proxy, or empty)."""
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    text, _ = remote_message(payload)
    code = payload.get("code") if isinstance(payload, dict) else None
    status = resp.status_code
    detail = text or resp.reason_phrase or "error"
    message = scrub(f"{provider_id}: {detail} (HTTP {status}{f', code {code}' if code else ''})", secrets)
    if status == 402:
        return QuotaExceededError(message)
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    return error_for_status(status, message, job=job, retry_after=retry_after)


def code_error(payload: dict[str, Any], provider_id: str, secrets: list[str], *, what: str) -> ProviderError:
    """The error for an HTTP-200 envelope whose `code` is not a success or a job state."""
    code = payload.get("code")
    text, _ = remote_message(payload)
    message = scrub(f"{provider_id}: {what} refused: {text or 'no message'} (code {code})", secrets)
    if code == CODE_CONTENT_VIOLATION:
        # Moderation at submit rejects the request itself: retrying the same prompt cannot help.
        return ContentFilteredError(message, error_code="content_prompt_rejected", retryable=False)
    if code == CODE_NO_CREDITS:
        needed = (payload.get("result") or {}).get("credits_needed") if isinstance(payload, dict) else None
        return QuotaExceededError(message, credits_needed=needed if isinstance(needed, int) else None)
    if code == CODE_TASK_RUNNING:
        return ConcurrentLimitError(message)
    if code == CODE_AUTH:
        return AuthenticationError(message)
    if code == CODE_RATE_LIMITED:
        return RateLimitError(message)
    if code == CODE_JOB_NOT_FOUND:
        return JobNotFoundError(message)
    if code in (CODE_BAD_PARAM, CODE_BAD_IMAGE):
        return InvalidParametersError(message)
    if code == CODE_SERVER_ERROR:
        return ProviderUnavailableError(message)
    return ProviderError(message, error_code="provider_generic", retryable=False)
