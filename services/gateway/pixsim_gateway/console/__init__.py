"""The web console: server-rendered pages at `/`, served by the gateway, that use only the public HTTP API
(called in-process through the gateway's own middleware, with the signed-in user's key).

Pages are Jinja2 templates (autoescaped) plus one small vanilla script and one stylesheet, both served
from this package (no CDN, nothing to build). See `sessions` for how the key is kept and `web` for the
Content-Security-Policy.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from . import account_pages, auth_pages, catalog_pages, generation_pages
from .sessions import SessionStore
from .web import Console, Refused, SignInRequired, secure, sign_in_redirect

__all__ = ["SESSION_TTL_S", "UPLOAD_PATH", "mount"]

SESSION_TTL_S = 12 * 3600
#: The console's form that carries uploads: it may be as large as an upload (see the gateway's body limits).
UPLOAD_PATH = "/generations/new"


def mount(app: FastAPI, db: Any, cipher: Any, *, oidc: bool, session_ttl_s: float = SESSION_TTL_S) -> Console:
    console = Console(app, SessionStore(db, cipher, session_ttl_s), oidc=oidc)
    for module in (auth_pages, generation_pages, catalog_pages, account_pages):
        app.include_router(module.router(console))

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired):  # type: ignore[no-untyped-def]
        return sign_in_redirect(exc, request)

    @app.exception_handler(Refused)
    async def _refused(request: Request, _exc: Refused):  # type: ignore[no-untyped-def]
        return secure(
            console.page(
                request,
                "error.html",
                None,
                403,
                title="Refused",
                message="This request did not come from a console page of this session. "
                "Reload the page and try again.",
            )
        )

    return console
