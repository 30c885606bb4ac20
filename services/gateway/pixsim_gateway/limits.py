"""Per-user limits: request rate (a token bucket shared by every gateway replica), generations in
flight, live SSE connections, and the size of a request body.

The rate limit is GCRA (`pixsim_runtime.rate_limits`): one number per user in MongoDB, admitted by one
conditional update, so every gateway replica shares the bucket and an admitted request costs one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse
from pixsim_runtime.rate_limits import Gcra
from pymongo.asynchronous.database import AsyncDatabase
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_body

if TYPE_CHECKING:
    from .auth import Principal

IN_FLIGHT = ("requested", "submitted", "processing")


@dataclass(frozen=True)
class RoleLimits:
    """Defaults of a role; a key's `limits` override them. 0 means no limit."""

    rate: float  # requests per second, sustained
    burst: int  # requests admitted at once after a quiet spell
    max_in_flight: int  # generations not yet ended


def effective(principal: Principal, defaults: RoleLimits) -> RoleLimits:
    over = principal.limits or {}
    return RoleLimits(
        rate=float(over.get("rate", defaults.rate)),
        burst=int(over.get("burst", defaults.burst)),
        max_in_flight=int(over.get("max_in_flight", defaults.max_in_flight)),
    )


class RateLimiter:
    def __init__(self, db: AsyncDatabase) -> None:
        self.gcra = Gcra(db)

    async def take(self, principal: Principal, defaults: RoleLimits) -> float | None:
        """None if the request is admitted; otherwise the seconds until it would be."""
        limits = effective(principal, defaults)
        return await self.gcra.take(f"user:{principal.user_id}", limits.rate, limits.burst)


async def check_in_flight(db: AsyncDatabase, principal: Principal, defaults: RoleLimits) -> None:
    """429 when the caller already has as many unfinished generations as allowed."""
    limit = effective(principal, defaults).max_in_flight
    if limit <= 0:
        return
    running = await db["generations"].count_documents(
        {"user_id": principal.user_id, "status": {"$in": list(IN_FLIGHT)}}, limit=limit
    )
    if running >= limit:
        raise ApiError(
            429,
            "too_many_in_flight",
            f"user {principal.user_id!r} already has {running} generations "
            f"in flight (limit {limit}); submit more when some have ended",
            headers={"Retry-After": "5"},
        )


class StreamSlots:
    """Live SSE connections of this gateway replica: at most `per_user` per user, `total` in all."""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user, self.total = per_user, total
        self.by_user: dict[str, int] = {}

    def acquire(self, user_id: str) -> None:
        if sum(self.by_user.values()) >= self.total:
            raise ApiError(
                429,
                "too_many_streams",
                f"this server already serves {self.total} event streams",
                headers={"Retry-After": "5"},
            )
        if self.by_user.get(user_id, 0) >= self.per_user:
            raise ApiError(
                429,
                "too_many_streams",
                f"user {user_id!r} already has {self.per_user} event streams open; close one first",
                headers={"Retry-After": "5"},
            )
        self.by_user[user_id] = self.by_user.get(user_id, 0) + 1

    def release(self, user_id: str) -> None:
        left = self.by_user.get(user_id, 1) - 1
        if left > 0:
            self.by_user[user_id] = left
        else:
            self.by_user.pop(user_id, None)


class BodyLimitMiddleware:
    """413 for a request body over `max_bytes`, announced (Content-Length) or streamed (chunked)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_bytes = max_bytes
        self.per_path = per_path or {}  # e.g. uploads, which may be larger than any JSON body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.per_path.get(scope["path"], self.default_bytes)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            await self._refuse(scope, receive, send, max_bytes)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:  # FastAPI re-raises HTTPException; the error handler answers
                    raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = JSONResponse(
            error_body("body_too_large", f"request body is larger than {max_bytes} bytes"),
            status_code=413,
        )
        await response(scope, receive, send)
