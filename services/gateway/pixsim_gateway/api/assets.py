"""`/api/v1/assets`: uploads. A user uploads a local file once and passes `asset://<id>` as any media
parameter; the dispatcher reads it back from PixSim's storage (never from a path a caller named).

The type is sniffed from the bytes (what the client claims is ignored), the size is capped while the
body streams to storage, and the asset belongs to the uploader: anybody else's id answers 404 here and
is refused as a parameter.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Path, UploadFile
from fastapi.responses import JSONResponse
from pixsim_contracts import new_id
from pixsim_runtime.assets import ASSET_SCHEME, ASSETS, asset_references
from pixsim_runtime.sniff import SNIFF_BYTES, sniff
from pixsim_runtime.storage import Storage, TooLarge
from pymongo.asynchronous.database import AsyncDatabase

from ..auth import Caller
from ..bounds import ID_PATTERN
from ..errors import ApiError, responses
from .owned import find_owned

AssetId = Annotated[str, Path(pattern=ID_PATTERN, description="The asset's id")]
Upload = Annotated[
    UploadFile, File(description="An image, video or audio file (PIXSIM_UPLOAD_MAX_BYTES at most)")
]
CHUNK = 1024 * 1024


def view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "url": f"{ASSET_SCHEME}{doc['_id']}",
        "owner": doc["owner"],
        "content_type": doc["content_type"],
        "size": doc["size"],
        "sha256": doc["sha256"],
        "filename": doc.get("filename"),
        "created_at": doc["created_at"].isoformat(),
    }


def now_ms() -> datetime:
    """Now, at MongoDB's (millisecond) precision, so the answer equals what a later read returns."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    base = re.split(r"[\\/]", name)[-1]
    return re.sub(r"[^\w .()+-]", "_", base)[:200] or None


async def check_references(db: AsyncDatabase, params: dict[str, Any], owner: str) -> None:
    """422 when `params` name an asset that does not exist or is not `owner`'s."""
    for param, asset_id in asset_references(params):
        doc = (
            await db[ASSETS].find_one({"_id": asset_id}, {"owner": 1})
            if re.match(ID_PATTERN, asset_id)
            else None
        )
        if doc is None or doc["owner"] != owner:
            raise ApiError(422, "asset_not_found", f"{param}: no asset {asset_id!r} of user {owner!r}")


def router(db: AsyncDatabase, storage: Storage, max_bytes: int) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["assets"], responses=responses(400, 401, 422, 429))
    assets = db[ASSETS]

    find = functools.partial(find_owned, assets, owner_field="owner", code="asset_not_found", noun="asset")

    @api.post("/assets", status_code=201, responses=responses(413, 415))
    async def upload_asset(
        principal: Caller,
        file: Upload,
    ) -> JSONResponse:
        """Upload a file; use its `url` (`asset://<id>`) as a media parameter of your generations."""
        first = await file.read(CHUNK)
        content_type = sniff(first[:SNIFF_BYTES])
        if content_type is None:
            raise ApiError(
                415,
                "unsupported_media_type",
                "not a PNG, JPEG, GIF, WebP, MP4, QuickTime, WebM, MP3 or WAV file",
            )
        asset_id = new_id()

        async def chunks() -> AsyncIterator[bytes]:
            chunk = first
            while chunk:
                yield chunk
                chunk = await file.read(CHUNK)

        try:
            stored = await storage.put(f"assets/{asset_id}", chunks(), content_type, max_bytes)
        except TooLarge:
            raise ApiError(413, "body_too_large", f"uploads are limited to {max_bytes} bytes") from None
        doc = {
            "_id": asset_id,
            "owner": principal.user_id,
            "key": stored.key,
            "content_type": content_type,
            "size": stored.size,
            "sha256": stored.sha256,
            "filename": clean_filename(file.filename),
            "created_at": now_ms(),
        }
        await assets.insert_one(doc)
        return JSONResponse(view(doc), status_code=201)

    @api.get("/assets/{asset_id}", responses=responses(404))
    async def get_asset(principal: Caller, asset_id: AssetId) -> JSONResponse:
        return JSONResponse(view(await find(asset_id, principal)))

    return api
