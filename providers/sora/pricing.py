"""What Sora costs: OpenAI bills video per second of output, by model and size.

Credits are US cents of OpenAI usage (credit type `usage`, the manifest's), so a price of $0.10 a second is
10 credits a second. Prices: OpenAI's published Videos API pricing (sora-2 $0.10/s at 720x1280 and
1280x720; sora-2-pro $0.30/s at those sizes and $0.50/s at 1024x1792 and 1792x1024).
"""

from __future__ import annotations

import math
from typing import Any

from .params import BASE_MODEL, DEFAULT_DURATION, DEFAULT_MODEL, DEFAULT_SIZE, LANDSCAPE, PORTRAIT, PRO_MODEL

#: Cents per second of video, by (model, size).
CENTS_PER_SECOND: dict[tuple[str, str], int] = {
    (BASE_MODEL, PORTRAIT): 10,
    (BASE_MODEL, LANDSCAPE): 10,
    (PRO_MODEL, PORTRAIT): 30,
    (PRO_MODEL, LANDSCAPE): 30,
    (PRO_MODEL, "1024x1792"): 50,
    (PRO_MODEL, "1792x1024"): 50,
}


def model_family(model: str | None) -> str | None:
    """`sora-2-pro-2025-10-06` -> `sora-2-pro`: the API reports dated snapshots, prices are per family."""
    if not model:
        return None
    if model.startswith(PRO_MODEL):
        return PRO_MODEL
    if model.startswith(BASE_MODEL):
        return BASE_MODEL
    return None


def rate(model: str | None, size: str | None) -> int | None:
    """Cents per second; with no size yet (image_to_video sizes itself from the image), the model's dearest
    size, so the reservation covers whatever the image turns out to be."""
    family = model_family(model)
    if family is None:
        return None
    if size is None:
        return max(cents for (m, _), cents in CENTS_PER_SECOND.items() if m == family)
    return CENTS_PER_SECOND.get((family, size))


def cost(model: str | None, size: str | None, seconds: float | None) -> int | None:
    """Credits (cents) for `seconds` of video, rounded up; None when the combination has no price."""
    per_second = rate(model, size)
    if per_second is None or not seconds or seconds <= 0:
        return None
    return math.ceil(per_second * seconds)


def estimate(params: dict[str, Any], *, sized_by_image: bool = False) -> int:
    """The reservation for canonical params. `sized_by_image`: image_to_video without a size, which takes
    the input image's size, so the model's dearest rate is reserved."""
    model = params.get("model") or DEFAULT_MODEL
    size = params.get("size") or (None if sized_by_image else DEFAULT_SIZE)
    seconds = float(params.get("duration") or DEFAULT_DURATION)
    # A size the model does not render is refused before submit; reserve the dearest rate meanwhile.
    return cost(model, size, seconds) or cost(model, None, seconds) or 0
