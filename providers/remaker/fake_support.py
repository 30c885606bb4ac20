"""Helpers of the Remaker fake (standard library only): multipart forms, images, JWTs, signed URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import zlib
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any


@dataclass
class FormFile:
    filename: str
    content_type: str
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, list[FormFile]]] | None:
    """(fields, files by field name) of a multipart/form-data body; None if it is not one."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        return None
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        return None
    fields: dict[str, str] = {}
    files: dict[str, list[FormFile]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = payload.decode("utf-8", errors="replace")
        else:
            ctype = part.get_content_type() if part.get("content-type") else "application/octet-stream"
            files.setdefault(name, []).append(FormFile(filename, ctype, payload))
    return fields, files


# -- images -----------------------------------------------------------------------------------------
def image_kind(data: bytes) -> str | None:
    """'png', 'jpeg' or 'webp' from the magic bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or baseline/progressive JPEG; None when it cannot tell."""
    kind = image_kind(data)
    if kind == "png" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if kind == "jpeg":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):  # start of frame: height then width
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            i += 2 + length
    return None


def make_png(width: int, height: int, key: str) -> bytes:
    """A valid RGB PNG: a gradient whose base colour comes from `key` (so each output looks different)."""
    r0, g0, b0 = hashlib.sha1(key.encode()).digest()[:3]
    row = bytearray(width * 3)
    row[0::3] = bytes((r0 + 255 * x // max(1, width - 1)) % 256 for x in range(width))
    row[2::3] = bytes([b0]) * width
    raw = bytearray()
    for y in range(height):
        row[1::3] = bytes([(g0 + 255 * y // max(1, height - 1)) % 256]) * width
        raw += b"\x00" + row  # filter type 0 before every scanline
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(
        b"IEND", b""
    )


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


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


# -- JWTs (HS256) and signed URLs -------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_jwt(claims: dict[str, Any], secret: str) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def read_jwt(token: str, secret: str | None, now: float) -> dict[str, Any] | None:
    """The claims of a well-formed, unexpired token signed with `secret` (None: skip the signature)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except ValueError:
        return None
    if secret is not None:
        expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            return None
    if not isinstance(claims, dict) or (isinstance(claims.get("exp"), int | float) and claims["exp"] < now):
        return None
    return claims


def url_signature(path: str, expires: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"{path}:{expires}".encode(), hashlib.sha1).hexdigest()
