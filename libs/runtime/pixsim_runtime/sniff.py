"""The media type of a file from its first bytes (never from what the sender claims).

Only the formats PixSim accepts and serves are known; anything else is `None` and refused."""

from __future__ import annotations

SNIFF_BYTES = 64


def sniff(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None


def a_kind(family: str) -> str:
    """"an image", "a video", "an audio file": for messages."""
    return {"image": "an image", "video": "a video", "audio": "an audio file"}.get(family, f"a {family} file")


def family(content_type: str) -> str:
    """`image`, `video` or `audio`."""
    return content_type.split("/", 1)[0]
