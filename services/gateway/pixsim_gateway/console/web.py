"""What every console page shares: security headers, templates, the signed-in visit and its API calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp

from .sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, SessionStore, same_origin, tokens_match
from .transport import AppTransport

HERE = Path(__file__).parent
#: Scripts only from this origin (no inline script, no eval), nothing framed, forms only to us.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def secure(response: Response, *, cache: bool = False) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not cache:  # pages hold one user's data: never kept by a shared cache or the back button
        response.headers.setdefault("Cache-Control", "no-store")
    return response


class ConsoleRoute(APIRoute):
    """A console route: its answers carry the security headers whatever the handler returned."""

    def get_route_handler(self):  # type: ignore[no-untyped-def]
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            return secure(await handler(request))

        return with_headers


class SignInRequired(Exception):
    """No (live) session: the visitor is sent to the sign-in page, and back here afterwards."""

    def __init__(self, back_to: str = "/") -> None:
        super().__init__(back_to)
        self.back_to = back_to


class Refused(Exception):
    """A state-changing request without this session's CSRF token, or from another origin."""


def local_path(value: str | None, default: str = "/generations") -> str:
    """`value` if it is a path on this site (never `//host` or a scheme): no open redirect."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and len(value) < 2000
    ):
        return value
    return default


@dataclass
class Answer:
    """An API response, read."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> dict[str, str]:
        err = (self.body or {}).get("error") if isinstance(self.body, dict) else None
        return err or {"code": f"http_{self.status}", "message": f"the API answered {self.status}"}


class Console:
    """The console's collaborators: its sessions, templates and the client of the gateway's own API."""

    def __init__(self, app: ASGIApp, store: SessionStore, *, oidc: bool) -> None:
        self.store = store
        self.oidc = oidc
        self.client = httpx.AsyncClient(
            transport=AppTransport(app), base_url="http://gateway.internal", timeout=httpx.Timeout(60.0)
        )
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        self.templates = Jinja2Templates(env=env)  # everything a template prints is escaped

    def page(
        self,
        request: Request,
        template: str,
        visit: Visit | None = None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        session = visit.session if visit else None
        return self.templates.TemplateResponse(
            request,
            template,
            {
                "me": session,
                "csrf": session.csrf if session else "",
                "oidc": self.oidc,
                "path": request.url.path,
                **context,
            },
            status_code=status_code,
        )

    async def visit(self, request: Request) -> Visit:
        session = await self.store.load(request.cookies.get(COOKIE))
        if session is None:
            raise SignInRequired(_here(request))
        return Visit(self, session, request)

    async def acting(self, request: Request) -> Visit:
        """A signed-in visit that may change something: same origin and the session's CSRF token."""
        visit = await self.visit(request)
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            given = (await request.form()).get(CSRF_FIELD)
        if not same_origin(request) or not tokens_match(
            visit.session.csrf, given if isinstance(given, str) else None
        ):
            raise Refused()
        return visit


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


class Visit:
    """One signed-in request: the API calls it makes carry the session's credential."""

    def __init__(self, console: Console, session: Session, request: Request) -> None:
        self.console, self.session, self.request = console, session, request

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session.token}", **(extra or {})}

    async def _signed_out(self) -> None:
        await self.console.store.end(self.session)  # the key was revoked or expired: so is the session
        raise SignInRequired(_here(self.request))

    async def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        resp = await self.console.client.request(
            method, path, headers=self._headers(kwargs.pop("headers", None)), **kwargs
        )
        if resp.status_code == 401:
            await self._signed_out()
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else None
        return Answer(resp.status_code, body)

    async def get(self, path: str, **params: Any) -> Answer:
        return await self.call("GET", path, params={k: v for k, v in params.items() if v not in (None, "")})

    async def providers(self) -> list[dict[str, Any]]:
        """The installed providers (none if the API would not say)."""
        answer = await self.get("/api/v1/providers")
        return answer.body.get("items", []) if answer.ok else []

    @asynccontextmanager
    async def stream(
        self, path: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        request = self.console.client.build_request(
            "GET", path, headers=self._headers(headers), params=params
        )
        resp = await self.console.client.send(request, stream=True)
        try:
            if resp.status_code == 401:
                await self._signed_out()
            yield resp
        finally:
            await resp.aclose()


def sign_in_redirect(exc: SignInRequired, request: Request) -> Response:
    if request.headers.get(CSRF_HEADER) or request.headers.get("accept", "").startswith("text/event-stream"):
        return secure(
            JSONResponse({"error": {"code": "signed_out", "message": "sign in again"}}, status_code=401)
        )
    return secure(RedirectResponse(f"/login?next={quote(local_path(exc.back_to), safe='')}", status_code=303))
