"""Generations: the live list, the form made from a parameter spec, the detail page with its event
stream and player, cancel, and the result's bytes (with range requests, so videos seek)."""

# No `from __future__ import annotations`: FastAPI must see the route signatures' Depends (local names).
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pixsim_contracts import TERMINAL_GENERATION_EVENTS as TERMINAL
from starlette.datastructures import UploadFile

from ..bounds import ID_PATTERN
from . import params as form_params
from .web import Answer, Console, ConsoleRoute, Visit

STATUSES = ("requested", "submitted", "processing", "completed", "failed", "filtered", "cancelled")
PAGE_SIZE = 25
FILE_SUFFIX = "__file"  # the upload box beside a media parameter's URL box
PASSED_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges", "etag", "last-modified")
EXTENSIONS = {
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
}
NOTICES = {"cancel_requested": "Cancellation requested.", "already_finished": "It had already finished."}
GenerationId = Annotated[str, Path(pattern=ID_PATTERN)]


def media_of(gen: dict[str, Any]) -> tuple[str | None, bool]:
    """("video" | "image" | "audio" | None, whether PixSim's stored copy can be played now)."""
    archive = gen.get("archive") or {}
    stored = (archive.get("objects") or {}).get("result") or {}
    kind = (stored.get("content_type") or "").split("/")[0] or None
    result = gen.get("result") or {}
    if kind is None:
        kind = "video" if result.get("video_url") else "image" if result.get("image_url") else None
    return kind, archive.get("status") == "archived" and bool(stored)


def view(gen: dict[str, Any]) -> dict[str, Any]:
    kind, ready = media_of(gen)
    return {
        **gen,
        "percent": round(100 * float(gen.get("progress") or 0)),
        "terminal": gen.get("status") in TERMINAL,
        "media": kind,
        "ready": ready,
        "prompt": str((gen.get("params") or {}).get("prompt") or ""),
    }


def estimate_text(answer: Answer) -> str:
    if not answer.ok:
        return f"No estimate: {answer.error['message']}"
    credits = answer.body.get("credits")
    if credits is None:
        return "This provider gives no estimate before a job runs."
    if not credits:
        return "Estimated cost: free."
    return "Estimated cost: " + ", ".join(
        f"{n} {kind} credit{'s' if n != 1 else ''}" for kind, n in credits.items()
    )


def router(console: Console) -> APIRouter:
    api = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
    Visiting = Annotated[Visit, Depends(console.visit)]
    Acting = Annotated[Visit, Depends(console.acting)]

    @api.get("/generations")
    async def generations(
        request: Request,
        visit: Visiting,
        status: str | None = None,
        provider_id: str | None = None,
        cursor: str | None = None,
        fragment: str | None = None,
    ) -> Response:
        status = status if status in STATUSES else None
        answer = await visit.get(
            "/api/v1/generations", status=status, provider_id=provider_id, cursor=cursor, limit=PAGE_SIZE
        )
        items = [view(g) for g in answer.body.get("items", [])] if answer.ok else []
        context = {
            "items": items,
            "error": None if answer.ok else answer.error,
            "next_cursor": answer.body.get("next_cursor") if answer.ok else None,
            "status": status,
            "provider_id": provider_id or "",
            "cursor": cursor,
        }
        if fragment == "rows":
            return console.page(request, "_generation_rows.html", visit, **context)
        return console.page(
            request,
            "generations.html",
            visit,
            statuses=STATUSES,
            providers=[p["id"] for p in await visit.providers()],
            **context,
        )

    def chosen(
        items: list[dict[str, Any]], provider_id: str | None, operation: str | None
    ) -> tuple[dict[str, Any] | None, str | None]:
        provider = next((p for p in items if p["id"] == provider_id), items[0] if items else None)
        if provider is None or not provider["operations"]:
            return provider, None
        return provider, operation if operation in provider["operations"] else provider["operations"][0]

    async def form_page(
        request: Request,
        visit: Visit,
        items: list[dict[str, Any]],
        provider: dict[str, Any] | None,
        operation: str | None,
        fields: list[form_params.FormField],
        *,
        estimate: str = "",
        problems: list[str] | None = None,
        status_code: int = 200,
    ) -> Response:
        return console.page(
            request,
            "generation_new.html",
            visit,
            status_code,
            providers=items,
            provider=provider,
            operation=operation,
            groups=form_params.groups_of(fields),
            estimate=estimate,
            problems=problems or [],
            file_suffix=FILE_SUFFIX,
            field_errors=any(f.error for f in fields),
        )

    async def estimate(visit: Visit, provider_id: str, operation: str, params: dict[str, Any]) -> str:
        return estimate_text(
            await visit.call(
                "POST",
                "/api/v1/estimates",
                json={"provider_id": provider_id, "operation_type": operation, "params": params},
            )
        )

    @api.get("/generations/new")
    async def new_generation(
        request: Request, visit: Visiting, provider: str | None = None, operation: str | None = None
    ) -> Response:
        items = await visit.providers()
        picked, op = chosen(items, provider, operation)
        spec = (picked or {}).get("parameter_spec", {}).get(op or "")
        fields = form_params.fields_of(spec)
        form_params.with_defaults(fields)
        text = (
            await estimate(
                visit, picked["id"], op, form_params.to_params(fields, {f.name: f.value for f in fields}, {})
            )
            if picked and op
            else ""
        )
        return await form_page(request, visit, items, picked, op, fields, estimate=text)

    def typed(form: Any) -> dict[str, str]:
        return {k: v for k, v in form.multi_items() if isinstance(v, str)}

    @api.post("/generations/estimate")
    async def estimate_for_form(request: Request, visit: Acting) -> JSONResponse:
        form = await request.form()
        values = typed(form)
        provider = next((p for p in await visit.providers() if p["id"] == values.get("provider_id")), None)
        op = values.get("operation_type", "")
        if provider is None or op not in provider["operations"]:
            return JSONResponse({"text": ""})
        fields = form_params.fields_of(provider["parameter_spec"].get(op))
        params = form_params.to_params(fields, values, {})
        bad = [f"{f.name} {f.error}" for f in fields if f.error]
        text = f"No estimate: {'; '.join(bad)}" if bad else await estimate(visit, provider["id"], op, params)
        return JSONResponse({"text": text})

    async def upload(visit: Visit, field: form_params.FormField, files: list[UploadFile]) -> list[str]:
        urls = []
        for file in files:
            answer = await visit.call(
                "POST",
                "/api/v1/assets",
                files={
                    "file": (
                        file.filename or "upload",
                        file.file,
                        file.content_type or "application/octet-stream",
                    )
                },
            )
            if not answer.ok:
                field.error = f"{file.filename}: {answer.error['message']}"
                return []
            urls.append(answer.body["url"])
        return urls

    @api.post("/generations/new")
    async def create_generation(request: Request, visit: Acting) -> Response:
        form = await request.form()
        values = typed(form)
        items = await visit.providers()
        provider, op = chosen(items, values.get("provider_id"), values.get("operation_type"))
        if provider is None or op is None or provider["id"] != values.get("provider_id"):
            return await form_page(
                request, visit, items, provider, op, [], problems=["Choose a provider."], status_code=422
            )
        fields = form_params.fields_of(provider["parameter_spec"].get(op))
        form_params.fill(fields, values)
        uploads: dict[str, list[str]] = {}
        for field in (f for f in fields if f.media):
            files = [
                f for f in form.getlist(field.name + FILE_SUFFIX) if isinstance(f, UploadFile) and f.filename
            ]
            if files and (urls := await upload(visit, field, files)):
                uploads[field.name] = urls
        params = form_params.to_params(fields, values, uploads)
        if any(f.error for f in fields):
            return await form_page(request, visit, items, provider, op, fields, status_code=422)
        answer = await visit.call(
            "POST",
            "/api/v1/generations",
            json={"provider_id": provider["id"], "operation_type": op, "params": params},
        )
        if answer.ok:
            return RedirectResponse(f"/generations/{answer.body['id']}", status_code=303)
        message = answer.error["message"]
        problems = form_params.place_problems(fields, message) if answer.status == 422 else [message]
        return await form_page(
            request,
            visit,
            items,
            provider,
            op,
            fields,
            problems=problems,
            estimate=await estimate(visit, provider["id"], op, params),
            status_code=answer.status,
        )

    async def generation_or_404(request: Request, visit: Visit, gid: str) -> dict[str, Any] | Response:
        answer = await visit.get(f"/api/v1/generations/{gid}")
        if not answer.ok:
            return console.page(
                request,
                "error.html",
                visit,
                answer.status,
                title="Generation not found",
                message=answer.error["message"],
            )
        return view(answer.body)

    @api.get("/generations/{gid}")
    async def generation(
        request: Request, visit: Visiting, gid: GenerationId, notice: str | None = None
    ) -> Response:
        gen = await generation_or_404(request, visit, gid)
        if isinstance(gen, Response):
            return gen
        return console.page(request, "generation.html", visit, gen=gen, notice=NOTICES.get(notice or ""))

    @api.get("/generations/{gid}/result")
    async def result_fragment(request: Request, visit: Visiting, gid: GenerationId) -> Response:
        gen = await generation_or_404(request, visit, gid)
        if isinstance(gen, Response):
            return gen
        return console.page(request, "_result.html", visit, gen=gen)

    @api.post("/generations/{gid}/cancel")
    async def cancel(visit: Acting, gid: GenerationId) -> Response:
        answer = await visit.call("POST", f"/api/v1/generations/{gid}/cancel")
        notice = "cancel_requested" if answer.ok else "already_finished" if answer.status == 409 else ""
        return RedirectResponse(f"/generations/{gid}?notice={notice}", status_code=303)

    async def relay(
        visit: Visit, path: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
    ) -> tuple[Any, Any]:
        """An API stream opened for passing on: (response, the stream's context to close)."""
        context = visit.stream(path, headers=headers, params=params)
        return await context.__aenter__(), context

    async def chunks(resp: Any, context: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.aiter_raw():
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):  # the browser left: the API's stream must end too
                await context.__aexit__(None, None, None)

    @api.get("/generations/{gid}/events")
    async def events(request: Request, visit: Visiting, gid: GenerationId) -> Response:
        last = request.headers.get("last-event-id")
        resp, context = await relay(
            visit,
            f"/api/v1/generations/{gid}/events",
            headers={"Last-Event-ID": last[:200]} if last else None,
        )
        if resp.status_code != 200:  # EventSource gives up on anything but 200
            await context.__aexit__(None, None, None)
            return Response(status_code=resp.status_code)
        return StreamingResponse(
            chunks(resp, context),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.get("/generations/{gid}/content")
    async def content(
        request: Request, visit: Visiting, gid: GenerationId, variant: str = "result", download: bool = False
    ) -> Response:
        wanted = request.headers.get("range")
        resp, context = await relay(
            visit,
            f"/api/v1/generations/{gid}/content",
            headers={"Range": wanted[:100]} if wanted else None,
            params={"variant": variant if variant in ("result", "thumbnail") else "result"},
        )
        if resp.is_redirect or resp.status_code >= 400:
            await resp.aread()
            await context.__aexit__(None, None, None)
            if (
                resp.is_redirect
            ):  # not stored by PixSim yet: the provider's own URL (a navigation, not a media load)
                return RedirectResponse(resp.headers["location"], status_code=307)
            return Response(resp.text, status_code=resp.status_code, media_type="application/json")
        headers = {k: resp.headers[k] for k in PASSED_HEADERS if k in resp.headers}
        if download:
            ext = EXTENSIONS.get(headers.get("content-type", "").split(";")[0], "bin")
            headers["content-disposition"] = (
                f'attachment; filename="{gid}{"-thumbnail" if variant == "thumbnail" else ""}.{ext}"'
            )
        return StreamingResponse(chunks(resp, context), status_code=resp.status_code, headers=headers)

    return api
