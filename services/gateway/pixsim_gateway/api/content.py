"""Serving a stored object over HTTP with single-range requests (so a browser can seek a video), or
a redirect to a presigned URL when the storage is S3."""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pixsim_runtime.storage import Storage

from ..errors import ApiError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `Range: bytes=...`, None for the whole object (no header, or one
    we do not serve: several ranges, another unit, bad syntax; RFC 9110 lets a server ignore those).
    Raises 416 when the range lies outside the object."""
    match = _RANGE.match((header or "").strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    else:
        start, end = max(size - int(last), 0), size - 1
    if start >= size or size == 0 or (not first and int(last) == 0):
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"the object has {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


async def serve(storage: Storage, obj: dict[str, Any], range_header: str | None) -> Response:
    if (url := await storage.presigned_get(obj["key"])) is not None:
        return RedirectResponse(url, status_code=307)
    size = obj["size"]
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{obj["sha256"]}"',
        "Cache-Control": "private, max-age=3600",
    }
    wanted = byte_range(range_header, size)
    if wanted is None:
        return StreamingResponse(
            storage.stream(obj["key"]),
            media_type=obj["content_type"],
            headers={**headers, "Content-Length": str(size)},
        )
    start, end = wanted
    return StreamingResponse(
        storage.stream(obj["key"], start, end + 1),
        status_code=206,
        media_type=obj["content_type"],
        headers={
            **headers,
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Content-Length": str(end - start + 1),
        },
    )
