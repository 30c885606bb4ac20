"""Console sign-in sessions: the browser holds only a random session id; the key stays on the server.

- The cookie carries 256 random bits, `HttpOnly` (no script can read it), `SameSite=Strict` (no other
  site's page can make the browser send it), `Secure` when the console is served over https, `Path=/`.
- MongoDB holds the session under the SHA-256 of that id (a leaked database row opens nothing), with
  the API key (or OIDC token) encrypted with the same key as provider credentials
  (`PIXSIM_CREDENTIALS_KEY`), who it belongs to, its CSRF token and when it ends. Signing out deletes it,
  so the cookie is dead at once, and a key revoked in the API ends every console session using it.
- Every state-changing console request carries the session's CSRF token (a form field or the
  `X-CSRF-Token` header), compared in constant time, and must not come from another origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from pymongo.asynchronous.database import AsyncDatabase

SESSIONS = "console_sessions"
COOKIE = "pixsim_console"
LOGIN_COOKIE = "pixsim_console_login"  # the sign-in form's CSRF token, before there is a session
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    sid_hash: str
    user_id: str
    role: str
    key_id: str | None
    csrf: str
    token: str  # the credential the console calls the API with; never sent to the browser
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: AsyncDatabase, cipher: Any, ttl_s: float) -> None:
        self.sessions = db[SESSIONS]
        self.cipher = cipher
        self.ttl_s = ttl_s

    async def create(self, token: str, me: dict[str, Any], expires_at: float | None = None) -> str:
        """A new session for a credential the API accepted (`me` is its GET /api/v1/me); its id."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        await self.sessions.insert_one(
            {
                "_id": _hash(sid),
                "token": self.cipher.encrypt({"token": token}),
                "user_id": me["user_id"],
                "role": me["role"],
                "key_id": me.get("key_id"),
                "csrf": secrets.token_urlsafe(32),
                "created_at": now,
                "expires_at": min(now + self.ttl_s, expires_at or float("inf")),
            }
        )
        return sid

    async def load(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        doc = await self.sessions.find_one({"_id": _hash(sid)})
        if doc is None:
            return None
        if doc["expires_at"] <= time.time():
            await self.sessions.delete_one({"_id": doc["_id"]})
            return None
        return Session(
            doc["_id"],
            doc["user_id"],
            doc["role"],
            doc.get("key_id"),
            doc["csrf"],
            self.cipher.decrypt(doc["token"])["token"],
            doc["expires_at"],
        )

    async def end(self, session: Session) -> None:
        await self.sessions.delete_one({"_id": session.sid_hash})


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, sid: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE, sid, max_age=max_age, path="/", httponly=True, samesite="strict", secure=is_https(request)
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=is_https(request))


def login_token(request: Request, response: Response) -> str:
    """The sign-in form's CSRF token: the one in its cookie, or a new one (set on `response`)."""
    token = request.cookies.get(LOGIN_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=3600,
            path="/",
            httponly=True,
            samesite="strict",
            secure=is_https(request),
        )
    return token


def same_origin(request: Request) -> bool:
    """False for a request a browser says came from another site (Origin / Sec-Fetch-Site)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def tokens_match(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
