"""Remaker's prices in its single credit pool (`web`): a fixed price per job, taken at submit.

Remaker deducts the listed price when `create-job` accepts a job and gives it back when the job
fails or its output is moderated, so the cost is known before submitting and never depends on the
result. The numbers are the ones the site shows next to each model (see README "Pricing").
"""

from __future__ import annotations

import math
from typing import Any

from .params import PHOTO_EDITOR, clamp_resolution

#: Prompt-editor price per model at 1K/2K.
PROMPT_EDITOR_CREDITS = {"sd": 6, "sd5": 8, "flux": 2, "qwen": 3, "nano": 4, "nano2": 6, "nano_pro": 10}
#: Photo-editor (inpainting) price per model; it keeps the input's size, so no resolution factor.
PHOTO_EDITOR_CREDITS = {"sd": 4, "flux": 2}
#: Bigger outputs cost more; rounded up to whole credits.
RESOLUTION_FACTOR = {"1K": 1.0, "2K": 1.0, "3K": 1.5, "4K": 2.0}


def job_credits(mapped: dict[str, Any]) -> int:
    """The price of one job described by mapped params (see params.map_params)."""
    model = mapped.get("task_type") or "sd"
    if mapped.get("mode") == PHOTO_EDITOR:
        return PHOTO_EDITOR_CREDITS.get(model, PHOTO_EDITOR_CREDITS["sd"])
    base = PROMPT_EDITOR_CREDITS.get(model, PROMPT_EDITOR_CREDITS["sd"])
    resolution = clamp_resolution(model, mapped.get("image_resolution"))
    return math.ceil(base * RESOLUTION_FACTOR[resolution])
