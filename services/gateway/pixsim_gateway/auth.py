"""Who is calling: every request under `/api/` needs `Authorization: Bearer <PixSim key or OIDC JWT>`.

Authentication is one ASGI middleware in front of the whole API, so no route can be added without
it and an anonymous caller learns nothing (not even whether a path exists or a body is valid).
It also applies the caller's request-rate limit (`limits.RateLimiter`). Routes read the caller
with the `caller` dependency, which also declares the bearer scheme in the OpenAPI document.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pixsim_runtime.group_commit import SharedReads
from pymongo.asynchronous.database import AsyncDatabase
from starlette.types import ASGIApp, Receive, Scope, Send

from . import api_keys
from .errors import ApiError, error_body
from .limits import RateLimiter, RoleLimits
from .oidc import InvalidToken, OidcVerifier

log = logging.getLogger(__name__)

PROTECTED_PREFIX = "/api/"
BEARER = HTTPBearer(auto_error=False, description="A PixSim API key (`psk_...`) or an OIDC access token")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    role: str  # "admin" | "user"
    key_id: str | None = None  # None for OIDC tokens
    limits: dict[str, float] = field(default_factory=dict)  # per-key overrides of the role's limits

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def owns(self, owner: str | None) -> bool:
        """May this caller see a resource owned by `owner`? Admins see everything."""
        return self.is_admin or (owner is not None and owner == self.user_id)


async def caller(request: Request, _bearer: Annotated[Any, Security(BEARER)] = None) -> Principal:
    """The route dependency: the principal the middleware authenticated. (Async: FastAPI runs a sync
    dependency in a worker thread, a thread round trip per request.)"""
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:  # only reachable if a route is mounted outside PROTECTED_PREFIX
        raise ApiError(401, "unauthenticated", "this route needs a credential")
    return principal


Caller = Annotated[Principal, Depends(caller)]


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "admin_only", "only an admin may do this")


class Authenticator:
    def __init__(self, db: AsyncDatabase, oidc: OidcVerifier | None) -> None:
        self.keys = SharedReads(db[api_keys.KEYS])
        self.oidc = oidc

    async def principal(self, authorization: str | None) -> Principal | str:
        """The caller, or why the credential is refused (for the log; the client gets one message)."""
        if not authorization:
            return "no credential"
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 8192:
            return "not a bearer credential"
        if token.startswith(api_keys.PREFIX):
            doc = await api_keys.verify(self.keys, token)
            if doc is None:
                return "unknown or revoked API key"
            return Principal(doc["owner"], doc["role"], doc["_id"], dict(doc.get("limits") or {}))
        if self.oidc is None:
            return "not a PixSim API key (OIDC is not configured)"
        try:
            user, role = await self.oidc.verify(token)
        except InvalidToken as exc:
            return f"invalid token: {exc}"
        return Principal(user, role)


class AuthMiddleware:
    """401 for every `/api/` request without a valid credential; 429 over the caller's rate."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        limiter: RateLimiter,
        limits: dict[str, RoleLimits],
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.limiter = limiter
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw = headers.get(b"authorization")
        found = await self.authenticator.principal(raw.decode("latin-1") if raw is not None else None)
        if isinstance(found, str):
            log.info("refused %s %s: %s", scope["method"], scope["path"], found)
            response = JSONResponse(
                error_body(
                    "unauthenticated",
                    "a valid credential is required: Authorization: Bearer <PixSim API key or OIDC token>",
                ),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        wait = await self.limiter.take(found, self.limits[found.role])
        if wait is not None:
            response = JSONResponse(
                error_body(
                    "rate_limited",
                    f"request rate limit of user {found.user_id!r} exceeded; retry in {wait:.1f}s",
                ),
                status_code=429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = found
        await self.app(scope, receive, send)
