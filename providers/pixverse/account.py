"""Turning a captured Pixverse session (or an API key) into account credentials, offline.

Accepted `raw_data` (what the browser extension captures, or what a user types in):

    {"cookies": {"_ai_token": "<jwt>", "_pxs7_trace_id": "...", "_pxs7_anonymous_id": "..."}
                 (or a list of {"name", "value", ...}),
     "jwt_token": "<jwt>"                      (instead of the cookie),
     "session_ids": {"ai_trace_id", "ai_anonymous_id"}   (optional; else the cookies, else new ids),
     "openapi_key": "sk-..."  (or "api_key"; optional with a session, enough on its own),
     "email": "..."           (optional; else the token's `Mail`, else fallback_email)}

The JWT's claims are read but not verified (only Pixverse can): a token Pixverse no longer accepts
is reported by the first call that uses it, as AuthenticationError. Error messages never include
a token or key.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pixsim_provider_sdk.tokens import NotAJwt, cookie_map, jwt_claims

SESSION_COOKIE = "_ai_token"
TRACE_COOKIE, ANONYMOUS_COOKIE = "_pxs7_trace_id", "_pxs7_anonymous_id"


def extract(raw_data: Any, fallback_email: str | None) -> dict[str, Any]:
    """`{"email", "credentials": {...}, "account_id", "username"}` or ValueError saying what is missing."""
    if not isinstance(raw_data, dict):
        # ValueError for every broken capture: that is extract_account_data's contract.
        raise ValueError("pixverse: raw_data must be an object")  # noqa: TRY004
    cookies = cookie_map(raw_data.get("cookies"))
    jwt = raw_data.get("jwt_token") or cookies.get(SESSION_COOKIE)
    key = raw_data.get("openapi_key") or raw_data.get("api_key")
    if (jwt is not None and not isinstance(jwt, str)) or (key is not None and not isinstance(key, str)):
        raise ValueError("pixverse: jwt_token and openapi_key must be strings")
    if not jwt and not key:
        raise ValueError(
            f"pixverse: no credentials: pass the '{SESSION_COOKIE}' cookie in raw_data['cookies'] "
            "(or raw_data['jwt_token']), and/or an API key in raw_data['openapi_key']"
        )
    try:
        claims = jwt_claims(jwt) if jwt else {}
    except NotAJwt as exc:
        raise ValueError(f"pixverse: the session token {exc}") from None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < time.time():
        raise ValueError("pixverse: the captured session has expired; log in again and capture a fresh one")
    username = claims.get("Username")
    email = (
        raw_data.get("email")
        or claims.get("Mail")
        or (username if isinstance(username, str) and "@" in username else None)
        or fallback_email
    )
    if not email:
        raise ValueError("pixverse: no email: the session carries none; pass raw_data['email'] or email")
    ids = raw_data.get("session_ids") if isinstance(raw_data.get("session_ids"), dict) else {}
    credentials = {"jwt_token": jwt, "openapi_key": key}
    if jwt:
        # Reusing the browser's ids makes our calls look like the same session: no "logged in elsewhere".
        credentials["trace_id"] = ids.get("ai_trace_id") or cookies.get(TRACE_COOKIE) or str(uuid.uuid4())
        credentials["anonymous_id"] = (
            ids.get("ai_anonymous_id") or cookies.get(ANONYMOUS_COOKIE) or str(uuid.uuid4())
        )
    return {
        "email": str(email),
        "credentials": {k: v for k, v in credentials.items() if v},
        "account_id": claims.get("AccountId"),
        "username": username,
    }
