"""Helpers of the fake Pixverse API (stdlib only): generated PNG/MP4 bytes, HS256 session tokens
and a multipart/form-data reader for uploads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import struct
import time
import zlib
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any


# -- media ----------------------------------------------------------------------------------------
def make_png(width: int, height: int, key: str) -> bytes:
    """A valid 8-bit RGB PNG: a gradient whose colours come from `key` (each job looks different)."""
    r0, g0, b0 = hashlib.sha1(key.encode()).digest()[:3]
    row = bytearray(width * 3)
    row[0::3] = bytes((r0 + 255 * x // max(1, width - 1)) % 256 for x in range(width))
    row[2::3] = bytes([b0]) * width
    raw = bytearray()
    for y in range(height):
        row[1::3] = bytes([(g0 + 255 * y // max(1, height - 1)) % 256]) * width
        raw += b"\x00" + row  # scanline filter 0
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(raw), 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def make_mp4(duration: int, key: str) -> bytes:
    """A small, structurally valid MP4 (ftyp, moov/mvhd with the duration, mdat filler). No tracks:
    it downloads and identifies as MP4 but shows nothing."""
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = (
        struct.pack(">B3xIIII", 0, 0, 0, 1000, max(1, duration) * 1000)
        + struct.pack(">IH10x", 0x10000, 0x100)
        + matrix
        + bytes(24)
        + struct.pack(">I", 1)
    )
    size = 1024 * max(1, duration)
    filler = (key.encode() + b"\x00") * math.ceil(size / (len(key) + 1))
    return (
        _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
        + _box(b"moov", _box(b"mvhd", mvhd))
        + _box(b"mdat", filler[:size])
    )


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def sniff_image(data: bytes) -> str | None:
    """The image content type from magic bytes; None when it is not PNG, JPEG or WebP."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# -- session tokens ---------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_jwt(secret: str, claims: dict[str, Any]) -> str:
    """An HS256 JWT like the `_ai_token` Pixverse sets in the browser."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def verify_jwt(secret: str, token: str) -> dict[str, Any] | None:
    """The claims of a token this fake signed and that has not expired; None otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = _b64(hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, parts[2]):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    if not isinstance(claims, dict) or float(claims.get("exp", 0)) < time.time():
        return None
    return claims


# -- uploads ----------------------------------------------------------------------------------------
def multipart_files(body: bytes, content_type: str) -> dict[str, tuple[str, str, bytes]]:
    """`{field: (filename, content type, bytes)}` of a multipart/form-data body (files only)."""
    if not content_type.lower().startswith("multipart/form-data"):
        return {}
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    files = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        if name and filename is not None:
            files[name] = (filename, part.get_content_type(), part.get_payload(decode=True) or b"")
    return files
