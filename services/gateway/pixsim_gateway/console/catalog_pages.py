"""Providers (manifests, operations, credit types, status notes, URL detection) and API keys."""

# No `from __future__ import annotations`: FastAPI must see the route signatures' Depends (local names).
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response

from ..bounds import KEY_ID_PATTERN
from .web import Console, ConsoleRoute, Visit

KEY_NOTICES = {
    "revoked": "The key was revoked: it stops working at once.",
    "not_revoked": "That key could not be revoked.",
}
DAY_S = 86400


def router(console: Console) -> APIRouter:
    api = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
    Visiting = Annotated[Visit, Depends(console.visit)]
    Acting = Annotated[Visit, Depends(console.acting)]

    @api.get("/providers")
    async def providers(request: Request, visit: Visiting, url: str | None = None) -> Response:
        answer = await visit.get("/api/v1/providers")
        detected, detect_error = None, None
        if url:
            found = await visit.get("/api/v1/providers/detect", url=url[:2048])
            detected, detect_error = (found.body, None) if found.ok else (None, found.error["message"])
        return console.page(
            request,
            "providers.html",
            visit,
            providers=answer.body.get("items", []) if answer.ok else [],
            disabled=answer.body.get("disabled", []) if answer.ok else [],
            url=url or "",
            detected=detected,
            detect_error=detect_error,
        )

    async def keys_page(
        request: Request,
        visit: Visit,
        cursor: str | None = None,
        *,
        notice: str | None = None,
        error: str | None = None,
        created: dict | None = None,
        status_code: int = 200,
    ) -> Response:
        answer = await visit.get("/api/v1/keys", cursor=cursor, limit=50)
        return console.page(
            request,
            "keys.html",
            visit,
            status_code,
            keys=answer.body.get("items", []) if answer.ok else [],
            next_cursor=answer.body.get("next_cursor") if answer.ok else None,
            notice=notice,
            error=error,
            created=created,
        )

    @api.get("/keys")
    async def keys(
        request: Request, visit: Visiting, cursor: str | None = None, notice: str | None = None
    ) -> Response:
        return await keys_page(request, visit, cursor, notice=KEY_NOTICES.get(notice or ""))

    @api.post("/keys")
    async def create_key(request: Request, visit: Acting) -> Response:
        if not visit.session.is_admin:
            return console.page(
                request,
                "error.html",
                visit,
                403,
                title="Admins only",
                message="Only an admin may create API keys.",
            )
        form = await request.form()
        body: dict = {"name": str(form.get("name") or "").strip(), "role": str(form.get("role") or "user")}
        if owner := str(form.get("owner") or "").strip():
            body["owner"] = owner
        days = str(form.get("expires_in_days") or "").strip()
        if days:
            if not days.isdigit() or int(days) < 1:
                return await keys_page(
                    request, visit, error="Expires in: a whole number of days, 1 or more.", status_code=422
                )
            body["expires_in_s"] = int(days) * DAY_S
        answer = await visit.call("POST", "/api/v1/keys", json=body)
        if not answer.ok:
            return await keys_page(request, visit, error=answer.error["message"], status_code=answer.status)
        return await keys_page(request, visit, created=answer.body)  # the only time the token is shown

    @api.post("/keys/{key_id}/revoke")
    async def revoke_key(visit: Acting, key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN)]) -> Response:
        answer = await visit.call("DELETE", f"/api/v1/keys/{key_id}")
        return RedirectResponse(f"/keys?notice={'revoked' if answer.ok else 'not_revoked'}", status_code=303)

    return api
