"""The `resolve_source_fn` handed to `prepare_execution_params`: a URL or a local path -> a local temp file."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import httpx

MAX_SOURCE_BYTES = 512 * 1024 * 1024


async def resolve_source(source: str, user_id: str | None, default_suffix: str) -> tuple[str, list[str]]:
    """Fetch `source` (http(s) URL, file:// URL or local path) into a temp file; return (path, [path])."""
    parsed = urlparse(source)
    suffix = Path(parsed.path).suffix or default_suffix
    fd, tmp = tempfile.mkstemp(prefix="pixsim-src-", suffix=suffix)
    os.close(fd)
    try:
        if parsed.scheme in ("http", "https"):
            await _download(source, tmp)
        elif parsed.scheme in ("", "file"):
            path = Path(parsed.path if parsed.scheme == "file" else source).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"source file {path} does not exist")
            shutil.copyfile(path, tmp)
        else:
            raise ValueError(f"cannot resolve source with scheme {parsed.scheme!r}: use http(s) or a local path")
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, [tmp]


async def _download(url: str, dest: str) -> None:
    async with httpx.AsyncClient(timeout=60, follow_redirects=True) as client, client.stream("GET", url) as resp:
        resp.raise_for_status()
        written = 0
        with open(dest, "wb") as out:
            async for chunk in resp.aiter_bytes():
                written += len(chunk)
                if written > MAX_SOURCE_BYTES:
                    raise ValueError(f"source {url} is larger than {MAX_SOURCE_BYTES} bytes")
                out.write(chunk)


def cleanup_temp_paths(paths: list[str] | None) -> None:
    for path in paths or []:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


async def prepare_source_param(
    mapped_params: dict,
    resolve_source_fn,
    *,
    user_id: str | None,
    param: str = "image_url",
    local_key: str = "local_image_path",
    default_suffix: str = ".png",
) -> dict:
    """The common `prepare_execution_params` body: fetch the source named by `param` to a local file
    stored under `local_key`, and list it in `_temp_paths` for the dispatcher to delete.
    Params without that source are returned unchanged."""
    source = mapped_params.get(param)
    if not source:
        return mapped_params
    local_path, temp_paths = await resolve_source_fn(source, user_id, default_suffix)
    return {
        **mapped_params,
        local_key: local_path,
        "_temp_paths": [*mapped_params.get("_temp_paths", []), *temp_paths],
    }
