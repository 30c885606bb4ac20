"""Remaker sessions: what a browser capture holds, and the headers the site sends with it.

The site keeps a raw JWT (no "Bearer") that it sends as `authorization`, plus `product-code` (the
site's product, `067003` on remaker.ai) and `product-serial` (a per-browser fingerprint). The JWT's
payload carries the user's id and e-mail (claim `gmail`, sometimes `email`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pixsim_provider_sdk import AuthenticationError, ProviderAccount
from pixsim_provider_sdk.tokens import NotAJwt, cookie_map, jwt_claims

#: The site's product code, sent by the web app on every request when the capture has none.
DEFAULT_PRODUCT_CODE = "067003"
#: The website the API belongs to; the API checks these like a browser's CORS request.
SITE_ORIGIN = "https://remaker.ai"

_TOKEN_KEYS = ("token", "jwt_token", "authorization")


def _first(sources: list[dict[str, Any]], *keys: str) -> Any:
    for source in sources:
        for key in keys:
            value = source.get(key)
            if value not in (None, ""):
                return value
    return None


def extract(provider_id: str, raw_data: dict[str, Any], fallback_email: str | None) -> dict[str, Any]:
    """`raw_data` (see README "Accounts") -> `{"email", "credentials": {"token", "product_code",
    "product_serial"}}`. Raises ValueError naming what is missing, never echoing a secret."""
    if not isinstance(raw_data, dict):
        raise ValueError(f"{provider_id}: raw_data must be an object")  # noqa: TRY004 (the contract: ValueError)
    cookies = cookie_map(raw_data.get("cookies"))
    local = raw_data.get("localStorage") if isinstance(raw_data.get("localStorage"), dict) else {}
    sources = [raw_data, local, cookies]
    token = _first(sources, *_TOKEN_KEYS)
    if not token or not isinstance(token, str):
        raise ValueError(
            f"{provider_id}: no session token found: pass raw_data['token'] (the site's 'authorization' "
            "header), localStorage['token'] or a 'token' cookie"
        )
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()  # the site sends the raw JWT; tolerate a pasted "Bearer ..." header
    try:
        claims = jwt_claims(token)
    except NotAJwt as exc:
        raise ValueError(f"{provider_id}: the session token {exc}") from None
    email = _first(sources, "email", "gmail") or claims.get("gmail") or claims.get("email") or fallback_email
    if not email or not isinstance(email, str):
        raise ValueError(
            f"{provider_id}: no e-mail in raw_data or in the token; pass an email for the account"
        )
    product_code = str(
        _first(sources, "product_code", "product-code") or claims.get("product_code") or DEFAULT_PRODUCT_CODE
    )
    serial = _first(sources, "product_serial", "product-serial")
    if not serial:
        # The site derives a stable per-browser fingerprint; a stable per-account one stands in for it.
        serial = hashlib.md5(f"pixsim:{claims.get('id') or email}".encode()).hexdigest()
    credentials = {"token": token, "product_code": product_code, "product_serial": str(serial)}
    if claims.get("id") is not None:
        credentials["user_id"] = str(claims["id"])
    return {"email": email.strip().lower(), "credentials": credentials}


def token_of(provider_id: str, account: ProviderAccount) -> str:
    token = (account.credentials or {}).get("token")
    if not token:
        raise AuthenticationError(f"{provider_id}: account {account.id} has no session token")
    return str(token)


def headers_for(provider_id: str, account: ProviderAccount) -> dict[str, str]:
    """The headers the web app sends: the raw JWT, the site's origin and the product headers."""
    credentials = account.credentials or {}
    return {
        "authorization": token_of(provider_id, account),
        "origin": SITE_ORIGIN,
        "referer": SITE_ORIGIN + "/",
        "accept": "application/json, text/plain, */*",
        "product-code": str(credentials.get("product_code") or DEFAULT_PRODUCT_CODE),
        "product-serial": str(credentials.get("product_serial") or ""),
    }
