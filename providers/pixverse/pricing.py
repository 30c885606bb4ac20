"""Pixverse's price list: credits per job, by API (web / openapi), model, quality and duration.

The numbers are the reference system's (`pixverse.pricing` in its SDK, summarised in the provider
reference §5). They are data only; `estimate_credits` / `compute_actual_credits` in the adapter use
`video_cost`, `transition_cost` and `image_cost` below.
"""

from __future__ import annotations

import math

#: WebAPI credits per second of video, by quality (5 s at 360p = 20 credits).
WEB_PER_SECOND: dict[str, int] = {"360p": 4, "540p": 6, "720p": 8, "1080p": 16}
#: WebAPI per-second overrides for partner models with their own price list.
WEB_MODEL_PER_SECOND: dict[str, dict[str, int]] = {"grok-imagine": {"480p": 10, "720p": 15}}
#: OpenAPI credits per second, by pricing tier (every current model is tier "v5").
OPENAPI_PER_SECOND: dict[str, dict[str, int]] = {"v5": {"360p": 9, "540p": 9, "720p": 12, "1080p": 24}}

#: Multi-shot surcharge (v5.5+): +10 up to 5 s, +20 above.
MULTI_SHOT_SHORT, MULTI_SHOT_LONG = 10, 20
#: Native audio: a flat +10, except these models, which add a share of the base cost instead.
NATIVE_AUDIO_FLAT = 10
AUDIO_SHARE_MODELS: dict[str, float] = {"v6": 0.25, "pixverse-c1": 0.25}
#: Transitions cost the 5-second price of their quality plus this per image beyond the first two.
TRANSITION_PER_EXTRA_IMAGE = 20
TRANSITION_BASE_SECONDS = 5

#: Image credits per (model, quality); qualities normalised to 2k/4k for 1440p/2160p.
IMAGE_CREDITS: dict[str, dict[str, int]] = {
    "gemini-3.0": {"1080p": 50, "2k": 50, "4k": 90},
    "gemini-2.5-flash": {"1080p": 15},
    "gemini-3.1-flash": {"512p": 16, "1080p": 25, "2k": 40, "4k": 60},
    "seedream-4.0": {"1080p": 10, "2k": 10, "4k": 10},
    "seedream-4.5": {"2k": 10, "4k": 10},
    "seedream-5.0-lite": {"2k": 15, "4k": 15},
    "qwen-image": {"720p": 5, "1080p": 10},
}
_IMAGE_QUALITY_ALIASES = {"1440p": "2k", "2160p": "4k"}


def _per_second(api: str, model: str, quality: str) -> int:
    if api == "openapi":
        table = OPENAPI_PER_SECOND["v5"]
    else:
        table = WEB_MODEL_PER_SECOND.get(model, WEB_PER_SECOND)
    if quality not in table:
        raise ValueError(f"no {api} price for model {model!r} at {quality!r}")
    return table[quality]


def video_cost(
    *, api: str, model: str, quality: str, duration: int, multi_shot: bool = False, audio: bool = False
) -> int:
    """Credits for one video of `duration` seconds (t2v, i2v, extend, fusion)."""
    base = _per_second(api, model, quality) * int(duration)
    cost = base
    if multi_shot:
        cost += MULTI_SHOT_LONG if duration > 5 else MULTI_SHOT_SHORT
    if audio:
        share = AUDIO_SHARE_MODELS.get(model)
        # Round a share up: an estimate that is a credit short would under-reserve.
        cost += math.ceil(base * share) if share else NATIVE_AUDIO_FLAT
    return cost


def transition_cost(*, model: str, quality: str, images: int, audio: bool = False) -> int:
    """Credits for a transition across `images` key frames (WebAPI only)."""
    base = video_cost(api="web", model=model, quality=quality, duration=TRANSITION_BASE_SECONDS, audio=audio)
    return base + max(0, images - 2) * TRANSITION_PER_EXTRA_IMAGE


def image_cost(model: str, quality: str) -> int | None:
    """Credits for one image, or None when the price list does not know the pair."""
    quality = _IMAGE_QUALITY_ALIASES.get(quality.lower(), quality.lower())
    return IMAGE_CREDITS.get(model, {}).get(quality)
