"""HTTP answers -> SDK errors: the status mapping, `Retry-After`, scrubbing and the "may it exist?" rule
that every HTTP adapter needs. A provider maps its own error codes first and falls back on these."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .errors import (
    AuthenticationError,
    InvalidParametersError,
    JobNotFoundError,
    ProviderError,
    ProviderUnavailableError,
    ProviderUnreachableError,
    RateLimitError,
)


def parse_retry_after(value: str | None, default: float | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date (never negative); `default` when it is
    absent or unreadable."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return default


#: Shorter credential values are flags or small ids (`"api_key"` as an auth type), not secrets: hiding
#: them would garble messages, and finding them in one proves nothing.
MIN_SECRET_LENGTH = 8


def secret_values(*credentials: Any) -> list[str]:
    """The one rule for what in credentials (nested dicts and lists) is a secret: strings and numbers of
    at least `MIN_SECRET_LENGTH` characters, except emails (an account's email is shown anyway). Longest
    first, so that `scrub` replaces a secret that contains another one whole. Used to scrub messages
    and by the conformance suite's leak check."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)
            if len(text) >= MIN_SECRET_LENGTH and "@" not in text:
                found.add(text)

    walk(list(credentials))
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by `***`: credentials never reach a message, even when the
    remote (or an exception) echoes them back."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def error_for_status(
    status: int, message: str, *, job: bool = False, retry_after: float | None = None
) -> ProviderError:
    """The SDK error for an HTTP status >= 400 that the provider's body did not explain: 401/403 auth,
    429 rate limit, 404 no such job (when `job`: the URL names one), 5xx and 408 unavailable, any other
    4xx invalid parameters."""
    if status in (401, 403):
        return AuthenticationError(message)
    if status == 429:
        return RateLimitError(message, retry_after=retry_after)
    if status == 404 and job:
        return JobNotFoundError(message)
    if status >= 500 or status == 408:
        return ProviderUnavailableError(message)
    return InvalidParametersError(message)


def may_have_created(status: int) -> bool:
    """Whether a submit that failed with this HTTP status may have created the job anyway: a 5xx can
    come from a gateway that lost the answer; 503 (overloaded), 429 and every 4xx come before anything
    is created."""
    return status >= 500 and status != 503


def unreachable(
    provider_id: str, base_url: str, exc: Exception, secrets: Iterable[str | None] = ()
) -> ProviderUnreachableError:
    """The error for an httpx transport error (timeouts included), its message scrubbed."""
    message = f"{provider_id}: cannot reach {base_url}: {type(exc).__name__}: {exc}"
    return ProviderUnreachableError.from_transport(exc, scrub(message, secrets))


def json_object(
    resp: httpx.Response,
    provider_id: str,
    what: str,
    *,
    submit: bool = False,
    error_for: Callable[[httpx.Response], ProviderError],
) -> dict[str, Any]:
    """The JSON object of a successful answer. A status >= 400 raises `error_for(resp)`, marked
    `maybe_accepted` when `submit` and the status `may_have_created` the job; a 2xx without a JSON object
    raises `provider_bad_response` (maybe accepted when `submit`: the job may exist). `what` names the
    call ("POST /v1/jobs") in the message."""
    if resp.status_code >= 400:
        error = error_for(resp)
        error.maybe_accepted = submit and may_have_created(resp.status_code)
        raise error
    try:
        data = resp.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProviderError(
            f"{provider_id}: {what} answered HTTP {resp.status_code} without a JSON object",
            error_code="provider_bad_response",
            maybe_accepted=submit and resp.is_success,
        )
    return data
