"""HS256 session tokens for fakes: providers whose browser sessions are JWTs get tokens a fake mints and
checks like the real site would. Standard library only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from ..tokens import NotAJwt, jwt_claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(secret: str, signed_part: str) -> str:
    return _b64(hmac.new(secret.encode(), signed_part.encode(), hashlib.sha256).digest())


def mint_jwt(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT of `claims`, signed with `secret`."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{_sign(secret, f'{head}.{body}')}"


def read_jwt(
    token: str, secret: str | None, *, now: float | None = None, require_exp: bool = False
) -> dict[str, Any] | None:
    """The claims of a well-formed token that has not expired (at `now`, default the clock) and is signed
    with `secret` (None: the signature is not checked); None otherwise. `require_exp`: a token without a
    numeric `exp` counts as expired."""
    try:
        claims = jwt_claims(token)
    except NotAJwt:
        return None
    if secret is not None:
        head, body, signature = token.split(".")
        if not hmac.compare_digest(signature, _sign(secret, f"{head}.{body}")):
            return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None if require_exp else claims
    return claims if exp >= (time.time() if now is None else now) else None
