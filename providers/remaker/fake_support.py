"""Helpers of the Remaker fake (standard library and the SDK test kit): output sizes and signed URLs."""

from __future__ import annotations

import hashlib
import hmac

from pixsim_provider_sdk import image_info


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG or WebP image; None when it cannot tell."""
    info = image_info(data)
    return (info[1], info[2]) if info else None


def output_size(resolution: str, aspect_ratio: str, source: tuple[int, int] | None) -> tuple[int, int]:
    """The nominal output size: the long side by resolution (1K = 1024 ... 4K = 4096), the shape by ratio."""
    long_side = {"1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}.get(resolution, 2048)
    if aspect_ratio == "match_input_image" or ":" not in aspect_ratio:
        w, h = source or (1, 1)
    else:
        w, h = (int(x) for x in aspect_ratio.split(":"))
    if w >= h:
        return long_side, max(1, round(long_side * h / w))
    return max(1, round(long_side * w / h)), long_side


def scaled(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` shrunk (keeping its shape) so neither side exceeds `max_side`."""
    w, h = size
    factor = min(1.0, max_side / max(w, h))
    return max(1, round(w * factor)), max(1, round(h * factor))


# -- signed URLs ----------------------------------------------------------------------------------
def url_signature(path: str, expires: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"{path}:{expires}".encode(), hashlib.sha1).hexdigest()
