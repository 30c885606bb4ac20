"""Pixverse's numeric error codes (ErrCode in the JSON body, usually with HTTP 200) -> SDK errors.

Two deliberate departures from the reference adapter (see README, "Error mapping"):
- 500020/500070/500071 (permission, template, resolution) are parameter errors here, not auth
  errors, so they end the job instead of rotating accounts as if the session were broken;
- an unknown 4xxxxx code is a parameter error (not retried); other unknown codes stay retryable.
"""

from __future__ import annotations

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
)

#: ErrCode -> (SDK class, error_code or None for the class default, what it means).
ERROR_CODES: dict[int, tuple[type[ProviderError], str | None, str]] = {
    10001: (AuthenticationError, "provider_account_blocked", "the account is blocked"),
    10002: (AuthenticationError, None, "the session token is expired or invalid"),
    10003: (AuthenticationError, None, "the user is not logged in"),
    10005: (AuthenticationError, None, "the session was logged in elsewhere"),
    400011: (InvalidParametersError, None, "a required parameter is empty"),
    400017: (InvalidParametersError, None, "invalid parameter"),
    400018: (InvalidParametersError, "param_too_long", "the prompt is longer than 5000 characters"),
    400019: (InvalidParametersError, "param_too_long", "the negative prompt is longer than 5000 characters"),
    400032: (InvalidParametersError, "param_asset_invalid", "invalid image id"),
    500020: (InvalidParametersError, "param_not_permitted", "the account's plan does not allow this"),
    500030: (InvalidParametersError, "param_asset_invalid", "the image is over 20 MB or 4000x4000 px"),
    500031: (InvalidParametersError, "param_asset_invalid", "the image cannot be read"),
    500032: (InvalidParametersError, "param_asset_invalid", "unsupported image format"),
    500033: (InvalidParametersError, "param_asset_invalid", "invalid image width or height"),
    500041: (ProviderUnavailableError, None, "the image upload failed"),
    500042: (InvalidParametersError, "param_asset_invalid", "invalid image path"),
    500043: (QuotaExceededError, None, "the account's credits are used up"),
    500044: (ConcurrentLimitError, None, "the account runs as many jobs as its plan allows"),
    500047: (JobNotFoundError, None, "the media id is invalid for this account"),
    500054: (ContentFilteredError, "content_output_rejected", "an input image or the output was moderated"),
    500063: (ContentFilteredError, "content_prompt_rejected", "the prompt or an input was moderated"),
    500064: (InvalidParametersError, "param_asset_deleted", "the referenced content was deleted"),
    500069: (ProviderUnavailableError, None, "Pixverse is under high load"),
    500070: (InvalidParametersError, "param_not_permitted", "the template is not activated for this account"),
    500071: (InvalidParametersError, "param_not_permitted", "the effect does not support this resolution"),
    500090: (QuotaExceededError, None, "insufficient balance"),
    500100: (ProviderUnavailableError, None, "Pixverse had an internal database error"),
    500213: (RateLimitError, None, "too many login attempts"),
}
#: Retry hints Pixverse gives no header for.
RETRY_AFTER = {500213: 600.0}
#: The output-moderation code is worth one more try (generation is random); the prompt code is not.
RETRYABLE_OVERRIDES = {500054: True, 500063: False}


def error_for_code(err_code: int, err_msg: str, *, credits_needed: int | None = None) -> ProviderError:
    """The SDK error for a non-zero ErrCode. The message carries Pixverse's text, never credentials."""
    known = ERROR_CODES.get(err_code)
    if known is None:
        if 400000 <= err_code < 500000:
            known = (InvalidParametersError, None, "the request was refused")
        else:
            known = (ProviderError, "provider_generic", "unexpected error")
    cls, code, meaning = known
    message = f"pixverse: {meaning} (ErrCode {err_code}: {err_msg or 'no message'})"
    kwargs: dict = {"error_code": code} if code else {}
    if err_code in RETRYABLE_OVERRIDES:
        kwargs["retryable"] = RETRYABLE_OVERRIDES[err_code]
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=RETRY_AFTER.get(err_code), **kwargs)
    if cls is QuotaExceededError:
        return QuotaExceededError(message, credits_needed=credits_needed, **kwargs)
    return cls(message, **kwargs)


def error_for_http(status: int, detail: str, retry_after: str | None, *, polling: bool) -> ProviderError:
    """The SDK error for an HTTP-level failure without an ErrCode body."""
    message = f"pixverse: HTTP {status}: {detail}"
    # Pixverse's own SDK waits 60 s when a 429 names no time.
    return error_for_status(status, message, job=polling, retry_after=parse_retry_after(retry_after, 60.0))
