"""Pixverse status codes -> ProviderStatus, and a job record -> ProviderStatusResult.

Pixverse reports a numeric status per video or image (`video_status` / `image_status` in the
WebAPI lists, `status` in OpenAPI results). The tables below are the whole mapping; README.md and
the manifest's status_mapping_notes say the same in prose.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pixsim_provider_sdk import ProviderStatus, ProviderStatusResult

from .catalog import FAL_PROXIED_MODELS

P, C, F, X = (
    ProviderStatus.PROCESSING,
    ProviderStatus.COMPLETED,
    ProviderStatus.FAILED,
    ProviderStatus.FILTERED,
)
#: Pixverse's own video models. 10 is completed only once the output has a size (see map_status).
VIDEO_STATUS = {1: C, 0: P, 2: P, 5: P, 10: P, -1: F, 4: F, 8: F, 9: F, 3: X, 7: X, 17: X}
#: Partner models Pixverse runs through fal: 9/10 are still running, 8 ("interrupted") is a refusal.
FAL_VIDEO_STATUS = {1: C, 0: P, 2: P, 5: P, 9: P, 10: P, 8: X, 3: X, 7: X, 17: X, -1: F, 4: F}
#: Images: 10 is the early queue right after submit.
IMAGE_STATUS = {1: C, 0: P, 2: P, 5: P, 10: P, 7: X, 8: F, 9: F}
#: Some endpoints answer with words instead of numbers.
STATUS_WORDS = {
    "completed": C,
    "success": C,
    "processing": P,
    "pending": P,
    "queued": P,
    "failed": F,
    "filtered": X,
    "rejected": X,
    "interrupted": X,
    "cancelled": ProviderStatus.CANCELLED,
}
#: Codes that mean "accepted, not started": progress 0 rather than half-way.
QUEUED_CODES = frozenset({0, 10})
#: Pixverse pre-allocates these template URLs before the real file exists.
PLACEHOLDER_SUFFIXES = ("/default.mp4", "/default.jpg")


def map_status(code: Any, *, image: bool, model: str | None = None, sized: bool = False) -> ProviderStatus:
    """The ProviderStatus for a raw code. Unknown codes count as still processing (the poller's
    deadline ends a job that never leaves them)."""
    if isinstance(code, str) and not code.lstrip("-").isdigit():
        return STATUS_WORDS.get(code.lower(), P)
    try:
        code = int(code)
    except (TypeError, ValueError):
        return P
    if image:
        return IMAGE_STATUS.get(code, P)
    if model in FAL_PROXIED_MODELS:
        return FAL_VIDEO_STATUS.get(code, P)
    if code == 10 and sized:  # the early-CDN state of a finished video: its size is known
        return C
    return VIDEO_STATUS.get(code, P)


def is_placeholder(url: str | None) -> bool:
    # Only the path: Pixverse serves them from its media hosts, the fake from its own address.
    return bool(url) and urlsplit(url).path.lower().endswith(PLACEHOLDER_SUFFIXES)


def _real(url: Any) -> str | None:
    return url if isinstance(url, str) and url and not is_placeholder(url) else None


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def to_result(record: dict[str, Any], *, image: bool) -> ProviderStatusResult:
    """A list item (WebAPI) or an OpenAPI result -> ProviderStatusResult."""
    code = record.get("image_status" if image else "video_status", record.get("status"))
    model = record.get("model")
    width = _int(record.get("output_width", record.get("outputWidth")))
    height = _int(record.get("output_height", record.get("outputHeight")))
    status = map_status(code, image=image, model=model, sized=bool(width and height))
    if image:
        url = _real(record.get("image_url") or record.get("url"))
        thumbnail = None
    else:
        url = _real(record.get("url") or record.get("video_url") or record.get("customer_video_url"))
        # Strictly the last frame: extend seeds from it, and a first frame would mislead.
        thumbnail = _real(record.get("customer_video_last_frame_url") or record.get("last_frame"))
    metadata = {"provider_status": code, "has_retrievable_media_url": url is not None}
    # What compute_actual_credits needs to re-price the job (the poller passes it no params).
    for name in ("model", "quality", "multi_shot", "audio"):
        if record.get(name) is not None:
            metadata[name] = record[name]
    if status is C and url is None:
        # Finished, but only the pre-allocated placeholder so far: the file is still on its way.
        status, metadata["media_url_pending"] = P, True
    result = ProviderStatusResult(status=status, metadata=metadata)
    if status is P:
        result.progress = 0.0 if _int_or_none(code) in QUEUED_CODES else 0.5
    elif status is C:
        result.progress = 1.0
        result.width, result.height = width, height
        if image:
            result.image_url = url
        else:
            result.video_url, result.thumbnail_url = url, thumbnail
            duration = record.get("duration")
            if isinstance(duration, int | float) and not isinstance(duration, bool) and duration > 0:
                result.duration_sec = float(duration)
    elif status is F:
        result.error_code = "generation_failed"
        result.error_message = f"Pixverse reports status {code}: the generation failed (credits are refunded)"
    elif status is X:
        partner = model in FAL_PROXIED_MODELS and _int_or_none(code) == 8
        result.error_code = "content_partner_refused" if partner else "content_render_moderated"
        result.error_message = f"Pixverse reports status {code}: " + (
            "the partner model refused the job" if partner else "the output was rejected by moderation"
        )
    return result


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
