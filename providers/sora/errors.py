"""OpenAI error responses -> the SDK's error classes, with every credential scrubbed from the message.

OpenAI answers errors as `{"error": {"message", "type", "param", "code"}}`. The HTTP status says most of it;
the `code` (or, for quota, the `type`) separates the cases that share a status: a 429 is a rate limit, an
exhausted quota (`insufficient_quota`) or, on Sora, too many renders at once.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from pixsim_provider_sdk import (
    ConcurrentLimitError,
    ContentFilteredError,
    ProviderError,
    QuotaExceededError,
    error_for_status,
    parse_retry_after,
)
from pixsim_provider_sdk import scrub as sdk_scrub

#: Moderation refusals. `sentinel_block` and `moderation_blocked` are what Sora sends; the third is
#: OpenAI's image-API code, accepted in case the Videos API adopts it.
MODERATION_CODES = frozenset({"moderation_blocked", "sentinel_block", "content_policy_violation"})
#: The account has no usage left (prepaid credits spent, or a billing limit hit).
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})
CONCURRENT_CODES = frozenset({"too_many_concurrent_tasks"})
#: ContentFilteredError codes: refused at submit (the prompt or the image) vs. during generation (the output).
INPUT_MODERATED = "content_input_moderated"
OUTPUT_MODERATED = "content_output_moderated"

# OpenAI echoes a masked key ("sk-proj-****abcd") in 401 messages; masked or not, none of it is repeated.
_KEYLIKE = re.compile(r"\bsk-[A-Za-z0-9_*.\-]{4,}")
_JWTLIKE = re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*")
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with the account's secrets, and anything shaped like an API key or a JWT, replaced by ***."""
    return _JWTLIKE.sub("***", _KEYLIKE.sub("sk-***", sdk_scrub(text, secrets)))


def error_body(resp: httpx.Response) -> dict[str, Any]:
    """The `error` object of an OpenAI error response; {} when the body is not one."""
    try:
        error = resp.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def map_error(
    provider_id: str,
    resp: httpx.Response,
    secrets: tuple[str, ...],
    *,
    job: bool = False,
    credits_needed: int | None = None,
) -> ProviderError:
    """The SDK error for a failed response. `job`: the URL names a video, so a 404 means no such job."""
    error = error_body(resp)
    code = error.get("code") if isinstance(error.get("code"), str) else None
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    status = resp.status_code
    detail = str(error.get("message") or resp.reason_phrase or "error")
    label = ", ".join(x for x in (f"HTTP {status}", code) if x)
    message = scrub(f"{provider_id}: {detail} ({label})", secrets)
    if code in MODERATION_CODES:
        return ContentFilteredError(message, error_code=INPUT_MODERATED)
    if code in QUOTA_CODES or kind == "insufficient_quota":
        return QuotaExceededError(message, credits_needed=credits_needed)
    if status == 429 and code in CONCURRENT_CODES:
        return ConcurrentLimitError(message)
    return error_for_status(status, message, job=job, retry_after=retry_after(resp.headers, detail))


def retry_after(headers: httpx.Headers, message: str = "") -> float | None:
    """Seconds to wait, from `retry-after-ms`, `retry-after` (seconds or an HTTP date),
    `x-ratelimit-reset-requests` ("1s", "6m0s", "20ms") or the message's "try again in 2s"."""
    if value := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    if (seconds := parse_retry_after(headers.get("retry-after"))) is not None:
        return seconds
    if value := headers.get("x-ratelimit-reset-requests"):
        seconds = _go_duration(value)
        if seconds is not None:
            return seconds
    if match := _TRY_AGAIN.search(message):
        amount = float(match[1])
        return amount / 1000 if match[2].lower() == "ms" else amount
    return None


def _go_duration(value: str) -> float | None:
    """Go-style durations as OpenAI's rate-limit headers write them: "1s", "6m0s", "1h2m", "20ms"."""
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(a + u for a, u in parts) != value.strip():
        return None
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(amount) * scale[unit] for amount, unit in parts)
