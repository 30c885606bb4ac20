"""`/api/v1/generations`: create, read, list, cancel, and live events."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pixsim_contracts import GenerationCancelRequested, GenerationRequested, OperationType, new_id
from pixsim_provider_sdk import ProviderError, ProviderNotFoundError, validate_params
from pixsim_runtime.accounts import load_account
from pixsim_runtime.broker import publish_event
from pixsim_runtime.service import ServiceContext
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError

from .errors import ApiError
from .projections import GENERATIONS, TERMINAL, Projector, to_api
from .sse import generation_event_stream

IDEMPOTENCY = "idempotency_keys"


class GenerationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: str
    operation_type: str
    params: dict[str, Any] = Field(default_factory=dict)
    account_id: str | None = None
    user_id: str | None = None
    priority: int = 0


def router(ctx: ServiceContext, projector: Projector, keepalive_s: float, cipher: Any) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["generations"])
    generations = ctx.db[GENERATIONS]

    def check(body: GenerationCreate) -> OperationType:
        try:
            provider = ctx.registry.get(body.provider_id)
        except ProviderNotFoundError as exc:
            raise ApiError(400, "unknown_provider", str(exc)) from None
        supported = [op.value for op in provider.supported_operations]
        if body.operation_type not in supported:
            raise ApiError(400, "unsupported_operation", f"provider {body.provider_id!r} does not support "
                           f"{body.operation_type!r} (supported: {', '.join(supported)})")
        op = OperationType(body.operation_type)
        problems = validate_params(provider.get_operation_parameter_spec().get(op.value), body.params)
        if problems:
            raise ApiError(422, "invalid_params", "; ".join(problems))
        return op

    async def submit(event: GenerationRequested) -> dict[str, Any]:
        await publish_event(ctx.broker, event, msg_id=event.generation_id)
        # Read your writes: fold our own event now instead of waiting for the projector's copy.
        return await projector.apply(event) or await generations.find_one({"_id": event.generation_id})

    @api.post("/generations", status_code=202)
    async def create_generation(
        body: GenerationCreate, idempotency_key: str | None = Header(default=None, max_length=200)
    ) -> JSONResponse:
        op = check(body)
        gid = new_id()
        event = GenerationRequested(event_id=f"{gid}.requested", generation_id=gid, provider_id=body.provider_id,
                                    operation_type=op, params=body.params, account_id=body.account_id,
                                    user_id=body.user_id, priority=body.priority)
        if idempotency_key:
            event = await _remember_key(ctx, idempotency_key, body, event)
        doc = await submit(event)
        return JSONResponse(jsonable(to_api(doc)), status_code=202)

    @api.get("/generations/{generation_id}")
    async def get_generation(generation_id: str) -> JSONResponse:
        return JSONResponse(jsonable(to_api(await _find(generations, generation_id))))

    @api.get("/generations")
    async def list_generations(
        status: str | None = None, provider_id: str | None = None,
        limit: int = Query(default=20, ge=1, le=200), cursor: str | None = None,
    ) -> JSONResponse:
        query: dict[str, Any] = {}
        if status:
            query["status"] = status
        if provider_id:
            query["provider_id"] = provider_id
        if cursor:
            created_at, last_id = _decode_cursor(cursor)
            query["$or"] = [{"created_at": {"$lt": created_at}}, {"created_at": created_at, "_id": {"$lt": last_id}}]
        docs = await generations.find(query).sort([("created_at", -1), ("_id", -1)]).limit(limit + 1).to_list()
        page, more = docs[:limit], len(docs) > limit
        next_cursor = _encode_cursor(page[-1]) if more and page else None
        return JSONResponse({"items": [jsonable(to_api(d)) for d in page], "next_cursor": next_cursor})

    @api.post("/generations/{generation_id}/cancel", status_code=202)
    async def cancel_generation(generation_id: str) -> JSONResponse:
        doc = await _find(generations, generation_id)
        if doc["status"] in TERMINAL:
            raise ApiError(409, "already_finished", f"generation {generation_id} already ended: {doc['status']}")
        event = GenerationCancelRequested(event_id=f"{generation_id}.cancel_requested", generation_id=generation_id)
        await publish_event(ctx.broker, event)
        doc = await projector.apply(event) or doc
        return JSONResponse(jsonable(to_api(doc)), status_code=202)

    @api.get("/generations/{generation_id}/content")
    async def generation_content(generation_id: str, variant: str = Query(default="result",
                                                                            pattern="^(result|thumbnail)$")):
        """The result's bytes. Where the provider's result URLs need the account's credentials (Sora),
        they are fetched here with them; public URLs are answered with a redirect."""
        doc = await _find(generations, generation_id)
        if doc["status"] != "completed":
            raise ApiError(409, "not_completed", f"generation {generation_id} is {doc['status']}, not completed")
        result = doc.get("result") or {}
        url = result.get("thumbnail_url") if variant == "thumbnail" else (
            result.get("video_url") or result.get("image_url"))
        if not url:
            raise ApiError(404, "no_content", f"generation {generation_id} has no {variant}")
        try:
            provider = ctx.registry.get(doc["provider_id"])
        except ProviderNotFoundError as exc:
            raise ApiError(404, "provider_not_found", str(exc)) from None
        account = await load_account(ctx.db, provider.manifest, doc["account_id"], cipher)
        fetched = None
        if account is not None:
            try:
                fetched = await provider.fetch_result(account, doc["provider_job_id"], variant)
            except ProviderError as exc:
                raise ApiError(502, exc.error_code, f"{doc['provider_id']}: {exc.message}") from None
        if fetched is None:
            return RedirectResponse(url, status_code=307)
        body, content_type = fetched
        return Response(body, media_type=content_type)

    @api.get("/generations/{generation_id}/events")
    async def generation_events(generation_id: str, request: Request) -> StreamingResponse:
        """Server-Sent Events: the generation's events from the start, then live, until it ends."""
        await _find(generations, generation_id)
        stream = generation_event_stream(ctx.broker, generation_id, request, keepalive_s)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return api


async def _remember_key(
    ctx: ServiceContext, key: str, body: GenerationCreate, event: GenerationRequested
) -> GenerationRequested:
    """The request event this key stands for: ours if the key is new, the first one's otherwise."""
    keys = ctx.db[IDEMPOTENCY]
    body_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    try:
        await keys.insert_one({"_id": key, "body_hash": body_hash, "event": event.model_dump(mode="json")})
        return event
    except DuplicateKeyError:
        first = await keys.find_one({"_id": key})
    if first["body_hash"] != body_hash:
        raise ApiError(409, "idempotency_key_reused", "this Idempotency-Key was used with a different request body")
    # Publishing the first event again is safe (same Nats-Msg-Id) and covers a crash after the key was saved.
    return GenerationRequested.model_validate(first["event"])


async def _find(collection, generation_id: str) -> dict[str, Any]:
    doc = await collection.find_one({"_id": generation_id})
    if doc is None:
        raise ApiError(404, "generation_not_found", f"no generation with id {generation_id!r}")
    return doc


def _encode_cursor(doc: dict[str, Any]) -> str:
    raw = json.dumps([doc["created_at"].isoformat(), doc["_id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created_at), str(last_id)
    except (ValueError, TypeError):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned") from None


def jsonable(value: Any) -> Any:
    """Datetimes to ISO strings, recursively."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
