"""`/api/v1/generations`: create, read, list, cancel, and live events, each only on the caller's own
generations (an admin's on everyone's); somebody else's generation answers 404, like a missing one."""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pixsim_contracts import (
    TERMINAL_GENERATION_EVENTS,
    GenerationCancelRequested,
    GenerationRequested,
    OperationType,
    new_id,
)
from pixsim_provider_sdk import ProviderError, ProviderNotFoundError, SourceRejected
from pixsim_runtime.accounts import load_account
from pixsim_runtime.broker import publish_event
from pixsim_runtime.requests import check_request
from pixsim_runtime.service import ServiceContext
from pixsim_runtime.storage import Storage
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError
from starlette.types import Receive, Scope, Send

from ..archive import ARCHIVES, public_archive
from ..auth import Caller
from ..bounds import ID_PATTERN, Cursor, Id, JsonObject, Priority, ProviderId, UserId
from ..errors import ApiError, responses
from ..limits import RoleLimits, StreamSlots, check_in_flight
from ..projections import GENERATIONS, Projector, to_api
from ..webhooks import DEFAULT_EVENTS, Subscriptions, check_webhook_url
from . import content, cursors
from .assets import check_references
from .owned import find_owned
from .sse import generation_event_stream

IDEMPOTENCY = "idempotency_keys"
#: What `/content` may answer with (the sniffed types of stored results; see pixsim_runtime.sniff).
MEDIA_CONTENT = {
    t: {"schema": {"type": "string", "format": "binary"}}
    for t in (
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "audio/mpeg",
        "audio/wav",
        "audio/mp4",
        "application/octet-stream",
    )
}
GenerationId = Annotated[str, Path(pattern=ID_PATTERN, description="The generation's id")]
WebhookEvent = Literal["start", "progress", "completed", "failed", "filtered", "cancelled"]
Status = Literal["requested", "submitted", "processing", "completed", "failed", "filtered", "cancelled"]


class GenerationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider_id: ProviderId
    operation_type: str = Field(max_length=64, description="One of the provider's operations")
    params: JsonObject = Field(default_factory=dict)
    account_id: Id | None = None
    user_id: UserId | None = Field(default=None, description="Admins only: create on behalf of this user")
    priority: Priority = 0
    webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        description="POST this generation's events here (signed; see the README)",
    )
    webhook_events_filter: list[WebhookEvent] | None = Field(
        default=None, max_length=6, description=f"Which events to send (default: {', '.join(DEFAULT_EVENTS)})"
    )


class SlotStreamingResponse(StreamingResponse):
    """A stream that holds one of the caller's SSE slots until it ends, however it ends."""

    def __init__(self, *args: Any, slots: StreamSlots, user_id: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots, self.user_id = slots, user_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.release(self.user_id)


def router(
    ctx: ServiceContext,
    projector: Projector,
    keepalive_s: float,
    cipher: Any,
    limits: dict[str, RoleLimits],
    slots: StreamSlots,
    storage: Storage,
    subscriptions: Subscriptions,
) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["generations"], responses=responses(400, 401, 422, 429))
    generations = ctx.db[GENERATIONS]

    def check(body: GenerationCreate) -> OperationType:
        return check_request(ctx.registry, body.provider_id, body.operation_type, body.params).operation_type

    find = functools.partial(
        find_owned, generations, owner_field="user_id", code="generation_not_found", noun="generation"
    )

    async def with_archives(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The API view of each generation, with its archive (PixSim's stored copy) if there is one."""
        ids = [d["_id"] for d in docs if d.get("status") == "completed"]
        records = (
            {r["_id"]: r for r in await ctx.db[ARCHIVES].find({"_id": {"$in": ids}}).to_list()} if ids else {}
        )
        views = []
        for doc in docs:
            view = to_api(doc)
            if doc.get("status") == "completed":
                archive = public_archive(records.get(doc["_id"]))
                view["archive"] = archive
                view["archive_error"] = (archive or {}).get("error")
            views.append(jsonable(view))
        return views

    async def submit(event: GenerationRequested, *, new: bool = False) -> dict[str, Any]:
        await publish_event(ctx.broker, event, msg_id=event.generation_id)
        # Read your writes: fold our own event now instead of waiting for the projector's copy. For a
        # generation created just now, if our own consumer folded it first, the projector's cache has it.
        stored = await projector.apply(event) or (projector.cached(event.generation_id) if new else None)
        return stored or await generations.find_one({"_id": event.generation_id})

    @api.post("/generations", status_code=202, responses=responses(400, 403, 409, 413))
    async def create_generation(
        principal: Caller,
        body: GenerationCreate,
        idempotency_key: str | None = Header(default=None, max_length=200, pattern=r"^[\x21-\x7e]+$"),
    ) -> JSONResponse:
        if body.user_id is not None and body.user_id != principal.user_id and not principal.is_admin:
            raise ApiError(
                403, "admin_only", "only an admin may create a generation on behalf of another user"
            )
        op = check(body)
        owner = body.user_id or principal.user_id
        await check_references(ctx.db, body.params, owner)
        webhook_url = await checked_webhook(body.webhook_url) if body.webhook_url else None
        keys = Idempotency(ctx, owner, idempotency_key, body) if idempotency_key else None
        earlier = await keys.earlier() if keys else None
        if earlier is not None:  # a retry: the first request's generation, whatever the limits say now
            return JSONResponse(jsonable(to_api(await submit(earlier))), status_code=202)
        await check_in_flight(ctx.db, principal, limits[principal.role])
        gid = new_id()
        event = GenerationRequested(
            event_id=f"{gid}.requested",
            generation_id=gid,
            provider_id=body.provider_id,
            operation_type=op,
            params=body.params,
            account_id=body.account_id,
            user_id=owner,
            priority=body.priority,
        )
        if keys:
            event = await keys.remember(event)
        if event.generation_id == gid:  # ours (not an earlier request's under the same Idempotency-Key)
            # Before the request exists: no event is missed, and the sender never needs to look it up.
            await subscriptions.create(
                gid,
                {
                    "user_id": owner,
                    "url": webhook_url,
                    "events": sorted(set(body.webhook_events_filter or DEFAULT_EVENTS)),
                }
                if webhook_url
                else None,
            )
        return JSONResponse(
            jsonable(to_api(await submit(event, new=event.generation_id == gid))), status_code=202
        )

    @api.get("/generations/{generation_id}", responses=responses(404))
    async def get_generation(principal: Caller, generation_id: GenerationId):
        return JSONResponse((await with_archives([await find(generation_id, principal)]))[0])

    @api.get("/generations", responses=responses(400))
    async def list_generations(
        principal: Caller,
        status: Status | None = None,
        provider_id: ProviderId | None = None,
        user_id: Annotated[UserId | None, Query(description="Admins only: this user's generations")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        cursor: Cursor | None = None,
    ) -> JSONResponse:
        query: dict[str, Any] = {}
        owner = user_id if principal.is_admin else principal.user_id
        if owner:
            query["user_id"] = owner
        if status:
            query["status"] = status
        if provider_id:
            query["provider_id"] = provider_id
        if cursor:
            created_at, last_id = _page_position(cursor)
            query["$or"] = [
                {"created_at": {"$lt": created_at}},
                {"created_at": created_at, "_id": {"$lt": last_id}},
            ]
        docs = (
            await generations.find(query).sort([("created_at", -1), ("_id", -1)]).limit(limit + 1).to_list()
        )
        page, more = docs[:limit], len(docs) > limit
        next_cursor = (
            cursors.encode("generation", [page[-1]["created_at"].isoformat(), page[-1]["_id"]])
            if more and page
            else None
        )
        return JSONResponse({"items": await with_archives(page), "next_cursor": next_cursor})

    @api.post("/generations/{generation_id}/cancel", status_code=202, responses=responses(404, 409))
    async def cancel_generation(principal: Caller, generation_id: GenerationId):
        doc = await find(generation_id, principal)
        if doc["status"] in TERMINAL_GENERATION_EVENTS:
            raise ApiError(
                409, "already_finished", f"generation {generation_id} already ended: {doc['status']}"
            )
        event = GenerationCancelRequested(
            event_id=f"{generation_id}.cancel_requested", generation_id=generation_id
        )
        await publish_event(ctx.broker, event)
        doc = await projector.apply(event) or doc
        return JSONResponse(jsonable(to_api(doc)), status_code=202)

    @api.get(
        "/generations/{generation_id}/content",
        responses={
            **responses(404, 409, 416, 502),
            200: {"description": "The bytes", "content": MEDIA_CONTENT},
            206: {
                "description": "The requested byte range of PixSim's stored copy",
                "content": MEDIA_CONTENT,
            },
            307: {"description": "Redirect to a presigned storage URL, or to the provider's public URL"},
        },
    )
    async def generation_content(
        principal: Caller,
        generation_id: GenerationId,
        variant: Literal["result", "thumbnail"] = "result",
        range: Annotated[str | None, Header(max_length=100, description="bytes=<start>-<end>")] = None,
    ):
        """The result's bytes from PixSim's own storage once archived (with range requests; on S3 a
        redirect to a presigned URL). Before that: where the provider's result URLs need the account's
        credentials (Sora), they are fetched here with them; public URLs are answered with a redirect."""
        doc = await find(generation_id, principal)
        if doc["status"] != "completed":
            raise ApiError(
                409, "not_completed", f"generation {generation_id} is {doc['status']}, not completed"
            )
        record = await ctx.db[ARCHIVES].find_one({"_id": generation_id})
        stored = (
            ((record or {}).get("objects") or {}).get(variant)
            if (record or {}).get("status") != "expired"
            else None
        )
        if stored:
            return await content.serve(storage, stored, range)
        result = doc.get("result") or {}
        url = (
            result.get("thumbnail_url")
            if variant == "thumbnail"
            else (result.get("video_url") or result.get("image_url"))
        )
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

    @api.get(
        "/generations/{generation_id}/events", responses=responses(404), response_class=StreamingResponse
    )
    async def generation_events(
        principal: Caller,
        request: Request,
        generation_id: GenerationId,
        last_event_id: Annotated[
            str | None,
            Header(max_length=200, pattern=r"^[\x21-\x7e]+$", description="Resume after this event id"),
        ] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: the generation's events from the start (or after `Last-Event-ID`), then
        live, until it ends.
        At most `PIXSIM_SSE_MAX_PER_USER` streams per user and `PIXSIM_SSE_MAX_TOTAL` per server (429)."""
        await find(generation_id, principal)
        slots.acquire(principal.user_id)
        stream = generation_event_stream(ctx.broker, generation_id, request, keepalive_s, last_event_id)
        return SlotStreamingResponse(
            stream,
            slots=slots,
            user_id=principal.user_id,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return api


class Idempotency:
    """An `Idempotency-Key` of one user (keys are per user: another user's key finds nothing)."""

    def __init__(self, ctx: ServiceContext, owner: str, key: str, body: GenerationCreate) -> None:
        self.keys = ctx.db[IDEMPOTENCY]
        self.id = f"{owner}:{key}"
        self.body_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()

    async def earlier(self) -> GenerationRequested | None:
        """The request event this key stood for, if it was used before (409 with another body)."""
        first = await self.keys.find_one({"_id": self.id})
        if first is None:
            return None
        if first["body_hash"] != self.body_hash:
            raise ApiError(
                409, "idempotency_key_reused", "this Idempotency-Key was used with a different request body"
            )
        # Publishing the first event again is safe (same Nats-Msg-Id) and covers a crash after the key was saved.
        return GenerationRequested.model_validate(first["event"])

    async def remember(self, event: GenerationRequested) -> GenerationRequested:
        """Ours if the key is still new; the first one's if a concurrent request got there first."""
        try:
            await self.keys.insert_one(
                {"_id": self.id, "body_hash": self.body_hash, "event": event.model_dump(mode="json")}
            )
            return event
        except DuplicateKeyError:
            return await self.earlier() or event


async def checked_webhook(url: str) -> str:
    try:
        return await check_webhook_url(url)
    except SourceRejected as exc:
        raise ApiError(422, "webhook_url_refused", exc.message) from None


def _page_position(cursor: str) -> tuple[datetime, str]:
    created_at, last_id = (cursors.decode("generation", cursor, list) + [None, None])[:2]
    try:
        return datetime.fromisoformat(created_at), str(last_id)
    except (TypeError, ValueError):
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
