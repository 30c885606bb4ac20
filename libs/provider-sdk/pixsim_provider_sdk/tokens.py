"""Reading a captured browser session: its cookies, and a JWT's claims without verifying it (adapters read
the email, account id and expiry of a session token that only the provider can verify)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def cookie_map(cookies: Any) -> dict[str, Any]:
    """Captured cookies as `{name: value}`: given so, or as the `[{"name", "value", "domain", ...}]` list
    browser extensions export; `{}` for anything else."""
    if isinstance(cookies, list):
        return {
            c["name"]: c.get("value")
            for c in cookies
            if isinstance(c, dict) and isinstance(c.get("name"), str)
        }
    return dict(cookies) if isinstance(cookies, dict) else {}


class NotAJwt(ValueError):
    """The token is not a JWT with a JSON-object payload. The message says why and repeats no part of it."""


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified. Raises `NotAJwt`, whose message ("is not a JWT ...", "has a
    payload that cannot be decoded", ...) reads after the caller's name for the token."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise NotAJwt("is not a JWT (header.payload.signature)")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise NotAJwt("has a payload that cannot be decoded") from None
    if not isinstance(claims, dict):
        raise NotAJwt("has a payload that is not a JSON object")
    return claims
