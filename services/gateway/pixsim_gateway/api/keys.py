"""`/api/v1/keys`: PixSim API keys. Admins create keys (for any user and role) and revoke any;
users list and revoke their own. A key's secret is shown once, in the answer that creates it."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pixsim_runtime.service import ServiceContext
from pydantic import BaseModel, ConfigDict, Field

from .. import api_keys
from ..auth import Caller, require_admin
from ..bounds import KEY_ID_PATTERN, Cursor, Text, UserId
from ..errors import responses
from . import cursors
from .owned import find_owned

KeyId = Annotated[
    str, Path(pattern=KEY_ID_PATTERN, description="The key's public id (the 16 hex digits after `psk_`)")
]


class KeyLimits(BaseModel):
    """Overrides of the role's limits for requests made with this key (0: no limit)."""

    model_config = ConfigDict(extra="forbid")

    rate: float | None = Field(default=None, ge=0, le=100_000, description="requests per second")
    burst: int | None = Field(default=None, ge=1, le=100_000)
    max_in_flight: int | None = Field(default=None, ge=0, le=1_000_000)


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, description="What the key is for")
    owner: UserId | None = Field(default=None, description="The user the key acts as (default: you)")
    role: Literal["admin", "user"] = "user"
    limits: KeyLimits = Field(default_factory=KeyLimits)
    expires_in_s: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=10 * 365 * 86400,
        description="The key stops working this many seconds from now",
    )


def _when(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def view(doc: dict[str, Any]) -> dict[str, Any]:
    """A key as the API shows it: never its hash."""
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "owner": doc["owner"],
        "role": doc["role"],
        "limits": doc.get("limits") or {},
        "created_at": _when(doc.get("created_at")),
        "last_used_at": _when(doc.get("last_used_at")),
        "revoked_at": _when(doc.get("revoked_at")),
        "expires_at": _when(doc.get("expires_at")),
        "revoked": bool(doc.get("revoked_at")),
    }


def router(ctx: ServiceContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1/keys", tags=["keys"], responses=responses(400, 401, 422, 429))
    keys = ctx.db[api_keys.KEYS]

    find = functools.partial(find_owned, keys, owner_field="owner", code="key_not_found", noun="API key")

    @api.post("", status_code=201, responses=responses(403, 413))
    async def create_key(principal: Caller, body: KeyCreate) -> JSONResponse:
        """Admins only. The answer holds `token`, the only time the secret is shown."""
        require_admin(principal)
        new = api_keys.new_token()
        limits = body.limits.model_dump(exclude_none=True)
        doc = api_keys.key_document(
            new,
            owner=body.owner or principal.user_id,
            role=body.role,
            name=body.name,
            limits=limits,
            expires_at=time.time() + body.expires_in_s if body.expires_in_s else None,
        )
        await keys.insert_one(doc)
        return JSONResponse({**view(doc), "token": new.token}, status_code=201)

    @api.get("", responses=responses(400))
    async def list_keys(
        principal: Caller,
        owner: Annotated[UserId | None, Query(description="Admins only: this user's keys")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Cursor | None = None,
    ) -> dict[str, Any]:
        """Your keys (an admin's: everyone's), newest first."""
        query: dict[str, Any] = {}
        who = owner if principal.is_admin else principal.user_id
        if who:
            query["owner"] = who
        if cursor:
            query["created_at"] = {"$lt": cursors.decode("key", cursor, (int, float))}
        docs = await keys.find(query).sort([("created_at", -1)]).limit(limit + 1).to_list()
        page = docs[:limit]
        more = len(docs) > limit and page
        return {
            "items": [view(d) for d in page],
            "next_cursor": cursors.encode("key", page[-1]["created_at"]) if more else None,
        }

    @api.get("/{key_id}", responses=responses(404))
    async def get_key(principal: Caller, key_id: KeyId) -> dict[str, Any]:
        return view(await find(key_id, principal))

    @api.delete("/{key_id}", responses=responses(404))
    async def revoke_key(principal: Caller, key_id: KeyId) -> dict[str, Any]:
        """Revoke: the key stops working at once. Revoking twice changes nothing."""
        await find(key_id, principal)
        await keys.update_one({"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": time.time()}})
        return view(await find(key_id, principal))

    return api
