"""A Videos API `video` object -> ProviderStatusResult.

| `status`      | ProviderStatus | notes                                                                   |
|---------------|----------------|-------------------------------------------------------------------------|
| `queued`      | pending        | progress 0                                                              |
| `in_progress` | processing     | `progress` (0..100) / 100                                               |
| `completed`   | completed      | result: the content endpoint (video, thumbnail variant); failed instead |
|               |                | with `provider_result_expired` once `expires_at` has passed              |
| `failed`      | filtered       | when `error.code` is a moderation code (`moderation_blocked`, ...)      |
| `failed`      | failed         | any other `error.code`                                                  |
"""

from __future__ import annotations

import time
from typing import Any

from pixsim_provider_sdk import (
    ProviderStatus,
    ProviderStatusResult,
    percent_progress,
    status_of,
)

from .errors import MODERATION_CODES, OUTPUT_MODERATED
from .params import dimensions

STATUS_MAP = {
    "queued": ProviderStatus.PENDING,
    "in_progress": ProviderStatus.PROCESSING,
    "completed": ProviderStatus.COMPLETED,
    "failed": ProviderStatus.FAILED,
}
RESULT_EXPIRED = "provider_result_expired"


def to_status(provider_id: str, video: dict[str, Any], content_url: str) -> ProviderStatusResult:
    """Map one `video` object. `content_url` is `.../v1/videos/{id}/content` for this video."""
    remote = video.get("status")
    status = status_of(provider_id, STATUS_MAP, remote, "video")
    metadata = {
        "remote_status": remote,
        **{
            k: video[k]
            for k in ("model", "size", "seconds", "expires_at", "completed_at")
            if video.get(k) is not None
        },
    }
    result = ProviderStatusResult(
        status=status,
        progress=percent_progress(video.get("progress")),
        metadata=metadata,
    )
    if status is ProviderStatus.PENDING and result.progress is None:
        result.progress = 0.0
    if status is ProviderStatus.COMPLETED:
        _fill_result(result, video, content_url)
    elif status is ProviderStatus.FAILED:
        error = video.get("error") if isinstance(video.get("error"), dict) else {}
        code, message = error.get("code"), error.get("message")
        if code in MODERATION_CODES:
            result.status = ProviderStatus.FILTERED
            result.error_code = OUTPUT_MODERATED
            result.error_message = (
                f"{provider_id}: {message or 'the output was blocked by moderation'} ({code})"
            )
        else:
            result.error_code = code if isinstance(code, str) and code else "generation_failed"
            result.error_message = f"{provider_id}: {message or 'the render failed'}"
    return result


def _fill_result(result: ProviderStatusResult, video: dict[str, Any], content_url: str) -> None:
    result.progress = 1.0
    expires_at = video.get("expires_at")
    if _is_number(expires_at) and expires_at <= time.time():
        # OpenAI deletes the assets at expires_at: a completion seen too late has nothing to deliver.
        result.status = ProviderStatus.FAILED
        result.error_code = RESULT_EXPIRED
        result.error_message = (
            f"the video's assets expired at {int(expires_at)} (unix) before they were collected"
        )
        return
    result.video_url = content_url
    result.thumbnail_url = f"{content_url}?variant=thumbnail"
    # The content endpoint needs the account's bearer token, like every Videos API call.
    result.metadata["content_requires_auth"] = True
    size = video.get("size")
    if isinstance(size, str) and "x" in size:
        try:
            result.width, result.height = dimensions(size)
        except ValueError:
            pass
    seconds = video.get("seconds")
    try:
        result.duration_sec = float(seconds) if seconds is not None else None
    except (TypeError, ValueError):
        result.duration_sec = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
