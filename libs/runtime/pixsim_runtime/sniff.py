"""The media type of a file from its first bytes (never from what the sender claims).

Only the formats PixSim accepts and serves are known; anything else is `None` and refused."""

from __future__ import annotations

from pixsim_provider_sdk.media_types import SNIFF_BYTES, sniff

__all__ = ["SNIFF_BYTES", "a_kind", "family", "sniff"]


def a_kind(family: str) -> str:
    """ "an image", "a video", "an audio file": for messages."""
    return {"image": "an image", "video": "a video", "audio": "an audio file"}.get(family, f"a {family} file")


def family(content_type: str) -> str:
    """`image`, `video` or `audio`."""
    return content_type.split("/", 1)[0]
