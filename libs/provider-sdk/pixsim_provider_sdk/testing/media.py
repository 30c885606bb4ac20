"""Small real media for fakes and the conformance suite: PNG and MP4 bytes, checks of downloaded results,
and two servers.

`AssetServer` plays the user's CDN: the conformance suite hands its URLs to image/video parameters;
`source_server()` is one that `resolve_source` is allowed to fetch from, for a provider's own tests.
`SilentServer` accepts connections and never answers, to prove an adapter honours its HTTP timeout.
A fake may import `make_png`/`make_mp4` from here wherever the SDK is installed.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import socket
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import httpx
from pixsim_contracts import OperationType

from ..media_types import PNG_SIGNATURE
from ..results import ProviderStatusResult
from ..safe_fetch import ALLOW_HOSTS_ENV, allow_in_env
from .checks import IMAGE_OPERATIONS, VIDEO_OPERATIONS
from .fake_http import FakeRequest, FakeResponse, JsonFakeServer, bytes_response, json_error, route


def make_png(width: int = 64, height: int = 64, key: str = "") -> bytes:
    """A valid 8-bit RGB PNG: a gradient whose base colour depends on `key`."""
    r0, g0, b0 = hashlib.sha1(key.encode()).digest()[:3]
    row = bytearray(width * 3)
    # Whole-row slice assignments keep large images fast without per-pixel Python loops.
    row[0::3] = bytes((r0 + 255 * x // max(1, width - 1)) % 256 for x in range(width))
    row[2::3] = bytes([b0]) * width
    raw = bytearray()
    for y in range(height):
        row[1::3] = bytes([(g0 + 255 * y // max(1, height - 1)) % 256]) * width
        raw += b"\x00" + row  # filter type 0 (none) before every scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(raw))
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def make_mp4(duration: int = 1, key: str = "", bytes_per_second: int = 1024) -> bytes:
    """A tiny structurally valid MP4 container (`ftyp`, `moov/mvhd` with the duration, an `mdat` of
    key-specific filler, `bytes_per_second` a second). It has no tracks: it identifies as MP4 but does
    not play."""
    mvhd = (
        struct.pack(">B3xIIII", 0, 0, 0, 1000, duration * 1000)  # version, times, timescale, duration
        + struct.pack(">IH10x", 0x10000, 0x100)
        + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
        + bytes(24)
        + struct.pack(">I", 1)
    )
    size = bytes_per_second * duration
    filler = (key.encode() + b"\x00") * (1 + size // (len(key) + 1))
    return (
        _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
        + _box(b"moov", _box(b"mvhd", mvhd))
        + _box(b"mdat", filler[:size])
    )


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


#: Content types whose leading bytes we can check.
_MAGIC = {
    "image/png": lambda b: b.startswith(PNG_SIGNATURE),
    "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda b: b[:6] in (b"GIF87a", b"GIF89a"),
    "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "video/mp4": lambda b: b[4:8] == b"ftyp",
    "video/quicktime": lambda b: b[4:8] in (b"ftyp", b"moov", b"mdat", b"wide"),
    "video/webm": lambda b: b.startswith(b"\x1a\x45\xdf\xa3"),
}


def media_problem(content_type: str | None, body: bytes, family: str | None = None) -> str | None:
    """Why `body` is not a real `family` ("image"/"video"/None: either) file of `content_type`, or None."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    kind = ctype.split("/")[0]
    if kind not in ("image", "video") or (family and kind != family):
        return f"Content-Type {content_type!r} is not {family or 'image or video'}"
    if not body:
        return "the body is empty"
    check = _MAGIC.get(ctype)
    if check is not None and not check(body):
        return f"the bytes are not {ctype} (they start with {body[:12]!r})"
    return None


async def result_problems(status: ProviderStatusResult, op: OperationType, fetch: Any = None) -> list[str]:
    """A completed job's result (video_url for video operations, image_url for image ones) and thumbnail
    download as real media of the right family. `fetch(variant)` is the provider's `fetch_result` for
    this job: when it returns bytes (result URLs that need the account's credentials), those are
    checked instead of a plain download."""
    if op in VIDEO_OPERATIONS:
        url, family = status.video_url, "video"
    elif op in IMAGE_OPERATIONS:
        url, family = status.image_url, "image"
    else:
        url, family = status.video_url or status.image_url, None
    if not url:
        return [f"{op.value}: completed without a {family or 'video or image'} url: {status.result_urls()}"]
    problems = []
    async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client:
        for name, link, kind in (("result", url, family), ("thumbnail", status.thumbnail_url, "image")):
            if not link:
                continue
            fetched = await fetch(name) if fetch is not None else None
            if fetched is not None:
                body, ctype = fetched
                if problem := media_problem(ctype, body, kind):
                    problems.append(f"{op.value}: the {name} fetched through fetch_result: {problem}")
                continue
            resp = await client.get(link)
            if resp.status_code != 200:
                problems.append(f"{op.value}: the {name} {link} answered HTTP {resp.status_code}")
            elif problem := media_problem(resp.headers.get("content-type"), resp.content, kind):
                problems.append(f"{op.value}: the {name} {link}: {problem}")
    return problems


class AssetServer(JsonFakeServer):
    """Serves `/assets/sample.png` (64x48), `/assets/sample-<W>x<H>.png` and `/assets/sample.mp4`, like the
    CDN a user's sources live on."""

    def __init__(self) -> None:
        super().__init__()
        self.files = {
            "sample.png": (make_png(64, 48, "asset"), "image/png"),
            "sample.mp4": (make_mp4(1, "asset"), "video/mp4"),
        }

    def asset_url(self, name: str) -> str:
        if self.url is None:
            raise RuntimeError("start the asset server first")
        return f"{self.url}/assets/{name}"

    def add(self, name: str, data: bytes, content_type: str | None = None) -> str:
        """Serve `data` as `name` (content type guessed from the name unless given); returns its URL."""
        self.files[name] = (data, content_type or mimetypes.guess_type(name)[0] or "application/octet-stream")
        return self.asset_url(name)

    @route("GET", r"/assets/(?P<name>[\w.-]+)")
    def asset(self, req: FakeRequest) -> FakeResponse:
        name = req.params["name"]
        sized = re.fullmatch(r"sample-(\d{1,4})x(\d{1,4})\.png", name)
        if sized and name not in self.files and 0 < int(sized[1]) <= 4096 and 0 < int(sized[2]) <= 4096:
            self.files[name] = (make_png(int(sized[1]), int(sized[2]), "asset"), "image/png")
        found = self.files.get(name)
        if found is None:
            return json_error(404, "not_found", f"no asset {req.params['name']}")
        return bytes_response(*found)


@contextmanager
def source_server() -> Iterator[AssetServer]:
    """An `AssetServer` that `resolve_source` may fetch from: its host:port is in `PIXSIM_FETCH_ALLOW_HOSTS`
    until the block ends (sources on loopback are refused otherwise). `server.add(name, data)` -> URL."""
    server = AssetServer()
    server.start("127.0.0.1", 0)
    before = os.environ.get(ALLOW_HOSTS_ENV)
    allow_in_env(server.url)
    try:
        yield server
    finally:
        server.stop()
        if before is None:
            os.environ.pop(ALLOW_HOSTS_ENV, None)
        else:
            os.environ[ALLOW_HOSTS_ENV] = before


class SilentServer:
    """A loopback port that completes TCP handshakes (the kernel's backlog) but never reads or answers."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def stop(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
