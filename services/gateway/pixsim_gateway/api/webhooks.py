"""`/api/v1/webhooks/secret` (the caller's signing secret) and a generation's webhook deliveries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pymongo.asynchronous.database import AsyncDatabase

from ..auth import Caller
from ..errors import ApiError, responses
from ..projections import GENERATIONS
from ..webhooks import DELIVERIES, Secrets, delivery_view
from .generations import GenerationId


def router(db: AsyncDatabase, secrets: Secrets) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["webhooks"], responses=responses(401, 429))

    @api.get("/webhooks/secret")
    async def webhook_secret(principal: Caller) -> JSONResponse:
        """The secret your webhooks are signed with (Standard Webhooks: `whsec_...`); verify every
        delivery with it."""
        return JSONResponse({"key": await secrets.get(principal.user_id)})

    @api.post("/webhooks/secret/rotate")
    async def rotate_webhook_secret(principal: Caller) -> JSONResponse:
        """A new secret; deliveries from now on are signed with it."""
        return JSONResponse({"key": await secrets.get(principal.user_id, rotate=True)})

    @api.get("/generations/{generation_id}/webhook-deliveries", responses=responses(404, 422))
    async def webhook_deliveries(principal: Caller, generation_id: GenerationId) -> JSONResponse:
        """Every webhook delivery of the generation: its attempts, their status codes and errors."""
        doc = await db[GENERATIONS].find_one({"_id": generation_id}, {"user_id": 1})
        if doc is None or not principal.owns(doc.get("user_id")):
            raise ApiError(404, "generation_not_found", f"no generation with id {generation_id!r}")
        found: list[dict[str, Any]] = (
            await db[DELIVERIES]
            .find({"generation_id": generation_id})
            .sort("created_at", 1)
            .limit(1000)
            .to_list()
        )
        return JSONResponse({"items": [delivery_view(d) for d in found]})

    return api
