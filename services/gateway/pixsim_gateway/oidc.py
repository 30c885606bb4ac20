"""OIDC / JWT bearer tokens from the operator's identity provider, verified with PyJWT.

Checked: the signature (a key from the issuer's JWKS, chosen by `kid`), `exp`, `nbf` (if present),
`iss` and `aud`; the algorithm must be one the operator allows (never `none`, never HMAC with a
public key). The JWKS is fetched from the operator's configured URL (never one named in a token),
cached, and fetched again when a token names an unknown `kid` (key rotation), at most once per
`refresh_min_s` so that tokens with made-up `kid`s cannot hammer the identity provider.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from .bounds import USER_PATTERN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str
    user_claim: str = "sub"
    role_claim: str = "role"
    admin_role: str = "admin"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_s: float = 10.0


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (for logs: clients only get 401)."""


class OidcVerifier:
    def __init__(self, config: OidcConfig, *, refresh_min_s: float = 30.0, max_age_s: float = 3600.0) -> None:
        self.config = config
        self.refresh_min_s = refresh_min_s
        self.max_age_s = max_age_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -1e18
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> tuple[str, str]:
        """(user id, role) from a valid token, or InvalidToken."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        if header.get("alg") not in self.config.algorithms:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not allowed")
        key = await self._key(str(header.get("kid") or ""))
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss", "aud", self.config.user_claim]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        user = claims.get(self.config.user_claim)
        if not isinstance(user, str) or not re.fullmatch(USER_PATTERN, user):
            raise InvalidToken(f"claim {self.config.user_claim!r} is not a user id ({USER_PATTERN})")
        roles = claims.get(self.config.role_claim)
        roles = roles if isinstance(roles, list) else [roles]
        return user, "admin" if self.config.admin_role in roles else "user"

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid in self._keys and time.monotonic() - self._fetched_at < self.max_age_s:
            return self._keys[kid]
        async with self._lock:
            stale = kid not in self._keys or time.monotonic() - self._fetched_at >= self.max_age_s
            if stale and time.monotonic() - self._fetched_at >= self.refresh_min_s:
                await self._fetch()
        if kid not in self._keys:
            raise InvalidToken(f"unknown key id {kid!r}")
        return self._keys[kid]

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()  # a failed fetch also waits refresh_min_s before the next try
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                resp = await client.get(self.config.jwks_url)
                resp.raise_for_status()
                jwks: dict[str, Any] = resp.json()
            keys = jwt.PyJWKSet.from_dict(jwks).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            log.warning("cannot fetch the JWKS from %s: %s", self.config.jwks_url, exc)
            return
        self._keys = {k.key_id: k for k in keys if k.key_id}
