"""Input media: which sources Pixverse can use as they are, and uploading the others.

The WebAPI only takes media hosted by Pixverse (a `customer_img_url` plus its storage path
`customer_img_path`); the OpenAPI only takes ids of uploads (`img_id`). Anything else is
downloaded (by `prepare_execution_params`, or by `execute` itself when called unprepared) and
uploaded through the OpenAPI's `POST /openapi/v2/image/upload`, which needs the account's API key.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pixsim_provider_sdk import InvalidParametersError, ProviderUnavailableError
from pixsim_provider_sdk.files import local_source, read_local_file

from .client import PixverseClient

IMG_ID_PREFIX = "img_id:"
PIXVERSE_DOMAIN = "pixverse.ai"


def img_id_of(source: str) -> int | None:
    """`img_id:123` (an earlier OpenAPI upload) -> 123."""
    if source.startswith(IMG_ID_PREFIX) and source[len(IMG_ID_PREFIX) :].isdigit():
        return int(source[len(IMG_ID_PREFIX) :])
    return None


def is_pixverse_media(url: str, base_url: str) -> bool:
    """True for media Pixverse hosts. The configured base URL counts too: the fake plays both
    app-api.pixverse.ai and media.pixverse.ai on one address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    if host == PIXVERSE_DOMAIN or host.endswith("." + PIXVERSE_DOMAIN):
        return True
    base = urlsplit(base_url)
    return (parts.scheme, parts.netloc) == (base.scheme, base.netloc)


def media_path(url: str) -> str:
    """The storage path Pixverse pairs with a media URL (`upload/abc.png`)."""
    return unquote(urlsplit(url).path.lstrip("/"))


def needs_local_file(source: str, api_method: str, base_url: str) -> bool:
    """Whether the source must be downloaded and uploaded before Pixverse can use it."""
    if img_id_of(source) is not None:
        return False
    return api_method == "openapi" or not is_pixverse_media(source, base_url)


async def upload_file(client: PixverseClient, file_path: str) -> dict[str, Any]:
    """Upload a local image; returns `{"id", "url", "path"}` (id is Pixverse's img_id)."""
    path = Path(file_path)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    data = read_local_file("pixverse", path, path.name)
    resp = await client.openapi(
        "POST", "/openapi/v2/image/upload", files={"image": (path.name, data, content_type)}
    )
    img_id, url = resp.get("img_id") or resp.get("id"), resp.get("img_url") or resp.get("url")
    if not img_id or not url:
        raise ProviderUnavailableError("pixverse: the upload answer has no img_id / img_url")
    return {"id": str(img_id), "url": str(url), "path": media_path(str(url))}


async def resolve_inputs(
    client: PixverseClient, mapped: dict[str, Any], base_url: str
) -> list[dict[str, Any]]:
    """Each source of `mapped` as Pixverse wants it: `{"url", "path"}` (WebAPI) or `{"img_id"}` (OpenAPI).

    Uses the prepared local files (`local_sources`) when there are; otherwise downloads here and
    deletes what it downloaded before returning.
    """
    api = mapped["api_method"]
    local = {int(k): v for k, v in (mapped.get("local_sources") or {}).items()}
    resolved = []
    for index, source in enumerate(mapped.get("sources") or []):
        img_id = img_id_of(source)
        if img_id is not None:
            if api != "openapi":
                raise InvalidParametersError("pixverse: img_id: references work with api_method=openapi only")
            resolved.append({"img_id": img_id})
            continue
        if not needs_local_file(source, api, base_url):
            resolved.append({"url": source, "path": media_path(source)})
            continue
        uploaded = await _upload_source(client, source, local.get(index))
        resolved.append(
            {"img_id": int(uploaded["id"])}
            if api == "openapi"
            else {"url": uploaded["url"], "path": uploaded["path"]}
        )
    return resolved


async def _upload_source(client: PixverseClient, source: str, local_path: str | None) -> dict[str, Any]:
    async with local_source("pixverse", source, local_path, param="image source") as path:  # SourceRejected
        return await upload_file(client, path)
