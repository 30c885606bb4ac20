"""Signing in and out, the home redirect and the console's two static files."""

# No `from __future__ import annotations`: FastAPI must see the route signatures' Depends (local names).
import hashlib
import time
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from .sessions import (
    LOGIN_COOKIE,
    clear_session_cookie,
    login_token,
    same_origin,
    set_session_cookie,
    tokens_match,
)
from .web import HERE, Console, ConsoleRoute, Visit, local_path, secure

STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
MAX_CREDENTIAL = 8192


def router(console: Console) -> APIRouter:
    api = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
    files = {name: (HERE.joinpath("static", name).read_bytes(), kind) for name, kind in STATIC.items()}
    etags = {name: f'"{hashlib.sha256(body).hexdigest()[:32]}"' for name, (body, _) in files.items()}

    @api.get("/")
    async def home(request: Request) -> Response:
        signed_in = await console.store.load(request.cookies.get("pixsim_console")) is not None
        return RedirectResponse("/generations" if signed_in else "/login", status_code=303)

    def sign_in_page(
        request: Request, back_to: str, error: str | None = None, status_code: int = 200
    ) -> Response:
        response = Response()
        token = login_token(request, response)
        page = console.page(
            request, "login.html", None, status_code, next=back_to, error=error, login_csrf=token
        )
        page.raw_headers.extend(h for h in response.raw_headers if h[0] == b"set-cookie")
        return page

    @api.get("/login")
    async def login_form(request: Request, next: str | None = None) -> Response:
        return sign_in_page(request, local_path(next))

    @api.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        back_to = local_path(str(form.get("next") or ""))
        if not same_origin(request) or not tokens_match(
            request.cookies.get(LOGIN_COOKIE), form.get("csrf_token")
        ):
            return sign_in_page(request, back_to, "The sign-in form had expired; please try again.", 403)
        credential = str(form.get("credential") or "").strip()
        if not credential or len(credential) > MAX_CREDENTIAL:
            return sign_in_page(request, back_to, "Enter an API key.", 422)
        resp = await console.client.get("/api/v1/me", headers={"Authorization": f"Bearer {credential}"})
        if resp.status_code != 200:
            return sign_in_page(
                request, back_to, "That key was refused: it is unknown, revoked or expired.", 401
            )
        expiry = token_expiry(credential)
        sid = await console.store.create(credential, resp.json(), expiry)
        response = RedirectResponse(back_to, status_code=303)
        lifetime = min(console.store.ttl_s, expiry - time.time()) if expiry else console.store.ttl_s
        set_session_cookie(response, request, sid, max(1, int(lifetime)))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @api.post("/logout")
    async def logout(request: Request, visit: Annotated[Visit, Depends(console.acting)]) -> Response:
        await console.store.end(visit.session)
        response = RedirectResponse("/login", status_code=303)
        clear_session_cookie(response, request)
        return response

    @api.get("/static/{name}")
    async def static(name: str, request: Request) -> Response:
        if name not in files:
            return secure(Response("not found", status_code=404, media_type="text/plain"))
        if request.headers.get("if-none-match") == etags[name]:
            return secure(Response(status_code=304, headers={"ETag": etags[name]}), cache=True)
        body, kind = files[name]
        return secure(
            Response(body, media_type=kind, headers={"ETag": etags[name], "Cache-Control": "no-cache"}),
            cache=True,
        )

    return api


def token_expiry(credential: str) -> float | None:
    """When an OIDC token (which the API has just accepted) stops working: the session ends with it."""
    if credential.startswith("psk_"):
        return None
    try:
        exp = jwt.decode(credential, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) and exp > time.time() else None
