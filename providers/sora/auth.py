"""Sora accounts: an OpenAI API key, or a browser session's bearer token, captured into `raw_data`.

API key: `{"api_key": "sk-...", "organization"?: "org-...", "project"?: "proj_...", "email"?}`.
Browser session (what the extension intercepts from the app's `fetch` calls): `{"bearer_token": "eyJ..."}`
or `{"authorization": "Bearer eyJ..."}`, plus optional `cookies` (a dict, or a list of `{"name", "value"}`)
holding `oai-device-id` / `oai-did`. The email comes from `raw_data["email"]`, the token's
`https://api.openai.com/profile` claim, its `email` claim, or the caller's fallback.
Error messages here name what is missing or wrong, never the value.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pixsim_provider_sdk import AuthenticationError, ProviderAccount
from pixsim_provider_sdk.tokens import NotAJwt, cookie_map, jwt_claims

PROFILE_CLAIM = "https://api.openai.com/profile"
AUTH_CLAIM = "https://api.openai.com/auth"
DEVICE_COOKIES = ("oai-device-id", "oai-did")
API_KEY, SESSION = "api_key", "session"


def extract_account_data(provider_id: str, raw_data: Any, fallback_email: str | None) -> dict[str, Any]:
    """`raw_data` -> `{"email", "credentials": {"kind", ...}}`; ValueError naming what is missing or wrong."""
    if not isinstance(raw_data, dict):
        raise ValueError(f"{provider_id}: raw_data must be an object")  # noqa: TRY004 (the contract: ValueError)
    api_key = _bearer(raw_data.get("api_key") or raw_data.get("openai_api_key"))
    session = _bearer(
        raw_data.get("bearer_token") or raw_data.get("access_token") or raw_data.get("authorization")
    )
    generic = _bearer(raw_data.get("token"))
    if generic and not (api_key or session):  # a bare "token": its shape says which kind it is
        api_key, session = (generic, None) if generic.startswith("sk-") else (None, generic)
    if api_key:
        return {
            "email": _email(raw_data, {}, fallback_email),
            "credentials": _api_key(provider_id, api_key, raw_data),
        }
    if session:
        claims = _claims(provider_id, session)
        return {
            "email": _email(raw_data, claims, fallback_email),
            "credentials": _session(session, claims, _cookies(provider_id, raw_data.get("cookies"))),
        }
    raise ValueError(
        f"{provider_id}: no credential found: pass raw_data['api_key'] (an OpenAI API key) or the browser "
        "session's raw_data['bearer_token'] / raw_data['authorization'] (the Authorization header of a request "
        "the Sora app made)"
    )


def _bearer(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    return value or None


def _api_key(provider_id: str, key: str, raw_data: dict[str, Any]) -> dict[str, Any]:
    if not key.startswith("sk-") or len(key) < 20 or any(c.isspace() for c in key):
        raise ValueError(f"{provider_id}: api_key does not look like an OpenAI API key (sk-..., no spaces)")
    credentials: dict[str, Any] = {"kind": API_KEY, "api_key": key}
    for field, names in (
        ("organization", ("organization", "org_id")),
        ("project", ("project", "project_id")),
    ):
        value = next((raw_data[n] for n in names if isinstance(raw_data.get(n), str) and raw_data[n]), None)
        if value:
            credentials[field] = value
    return credentials


def _claims(provider_id: str, token: str) -> dict[str, Any]:
    """The JWT's payload, unverified (OpenAI verifies it; we only read the email, user id and expiry)."""
    try:
        claims = jwt_claims(token)
    except NotAJwt as exc:
        raise ValueError(f"{provider_id}: the session bearer token {exc}") from None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp <= time.time():
        when = datetime.fromtimestamp(exp, UTC).isoformat(timespec="seconds")
        raise ValueError(f"{provider_id}: the session token expired at {when}; capture a fresh one")
    return claims


def _cookies(provider_id: str, cookies: Any) -> dict[str, str]:
    if cookies is not None and not isinstance(cookies, dict | list):
        raise ValueError(f"{provider_id}: raw_data['cookies'] must be an object or a list of {{name, value}}")
    return {k: v for k, v in cookie_map(cookies).items() if isinstance(k, str) and isinstance(v, str)}


def _session(token: str, claims: dict[str, Any], cookies: dict[str, str]) -> dict[str, Any]:
    credentials: dict[str, Any] = {"kind": SESSION, "access_token": token}
    device = next((cookies[name] for name in DEVICE_COOKIES if cookies.get(name)), None)
    auth = claims.get(AUTH_CLAIM) if isinstance(claims.get(AUTH_CLAIM), dict) else {}
    user_id = auth.get("user_id") or claims.get("sub")
    if device:
        credentials["device_id"] = device
    if isinstance(user_id, str):
        credentials["user_id"] = user_id
    if isinstance(claims.get("exp"), int | float):
        credentials["expires_at"] = int(claims["exp"])
    return credentials


def _email(raw_data: dict[str, Any], claims: dict[str, Any], fallback: str | None) -> str | None:
    profile = claims.get(PROFILE_CLAIM) if isinstance(claims.get(PROFILE_CLAIM), dict) else {}
    for value in (
        raw_data.get("email"),
        profile.get("email"),
        claims.get(f"{PROFILE_CLAIM}.email"),
        claims.get("email"),
        fallback,
    ):
        if isinstance(value, str) and "@" in value:
            return value
    return None


def request_auth(provider_id: str, account: ProviderAccount) -> tuple[dict[str, str], tuple[str, ...]]:
    """(headers, secrets) for one request on this account; the secrets are scrubbed from any error text."""
    credentials = account.credentials or {}
    token = credentials.get("api_key") or credentials.get("access_token") or credentials.get("token")
    if not token:
        raise AuthenticationError(f"{provider_id}: account {account.id} has no API key or session token")
    headers = {"Authorization": f"Bearer {token}"}
    if credentials.get("organization"):
        headers["OpenAI-Organization"] = str(credentials["organization"])
    if credentials.get("project"):
        headers["OpenAI-Project"] = str(credentials["project"])
    if credentials.get("device_id"):
        headers["OAI-Device-Id"] = str(credentials["device_id"])
    return headers, (str(token),)
