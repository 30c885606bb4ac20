"""`asset://<id>` sources: uploads read back from PixSim's storage, only for the asset's owner.

Every other source goes on to `safe_fetch` (http(s) of public hosts only) unchanged, so the SSRF
rules are not weakened: an asset reference never reaches the network or the filesystem by name.
"""

from __future__ import annotations

import mimetypes
import os
import re
import tempfile
from typing import Any

from pixsim_provider_sdk import SourceRejected
from pixsim_provider_sdk.files import expected_family
from pixsim_runtime.assets import ASSET_SCHEME, ASSETS
from pixsim_runtime.sniff import a_kind, family
from pixsim_runtime.storage import Storage
from pymongo.asynchronous.database import AsyncDatabase

_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class AssetSources:
    """A `resolve_source_fn` that knows `asset://` and hands everything else to `fallback`."""

    def __init__(self, db: AsyncDatabase, storage: Storage, fallback: Any) -> None:
        self.assets = db[ASSETS]
        self.storage = storage
        self.fallback = fallback

    async def __call__(
        self,
        source: object,
        user_id: str | None,
        default_suffix: str,
        *,
        param: str = "source",
        expect: str | None = None,
    ) -> tuple[str, list[str]]:
        if not (isinstance(source, str) and source.startswith(ASSET_SCHEME)):
            return await self.fallback(source, user_id, default_suffix, param=param, expect=expect)
        asset_id = source.removeprefix(ASSET_SCHEME)
        doc = await self.assets.find_one({"_id": asset_id}) if _ID.match(asset_id) else None
        if doc is None or user_id is None or doc["owner"] != user_id:
            raise SourceRejected(f"{param}: no asset {asset_id[:128]!r} of this user")
        expect = expect or expected_family(param, default_suffix)
        if expect and family(doc["content_type"]) != expect:
            raise SourceRejected(f"{param}: asset {asset_id} is {doc['content_type']}, not {a_kind(expect)}")
        suffix = mimetypes.guess_extension(doc["content_type"]) or default_suffix
        fd, tmp = tempfile.mkstemp(prefix="pixsim-asset-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in self.storage.stream(doc["key"]):
                    out.write(chunk)
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp, [tmp]
