"""Every route of the API refuses a caller without a valid credential: no key, a malformed or unknown
one, a revoked key, and OIDC tokens with a bad signature, the wrong issuer or audience, expired, not
yet valid, an unknown key id, or no signature at all. The routes are read from the app's own OpenAPI
document, so a route added later is covered without touching this test."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pixsim_gateway.api_keys import new_token
from security.conftest import AUDIENCE, ISSUER

pytestmark = pytest.mark.system

PATH_VALUES = {
    "generation_id": "0190abcdef0123456789abcdef",
    "account_id": "acc_0123456789",
    "key_id": "0123456789abcdef",
    "provider_id": "sim",
    "asset_id": "0190abcdef0123456789abcdef",
}


async def operations(url: str) -> list[tuple[str, str]]:
    async with httpx.AsyncClient(base_url=url) as client:
        schema = (await client.get("/openapi.json")).json()  # public: it names routes, holds no data
    ops = [
        (method.upper(), path.format(**PATH_VALUES))
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(ops) >= 19, ops  # generations, accounts, providers, keys
    return ops


def bad_credentials(secure: Any) -> dict[str, str | None]:
    idp = secure.idp
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alice_id = secure.keys["alice"].split("_")[1]
    now = int(time.time())
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300}, None, algorithm="none"
    )
    return {
        "none": None,
        "basic": "Basic YWxpY2U6cGFzc3dvcmQ=",
        "empty bearer": "Bearer",
        "malformed bearer": "Bearer not-a-key-at-all",
        "unknown key": f"Bearer {new_token().token}",
        "known id, wrong secret": f"Bearer psk_{alice_id}_{new_token().token.split('_', 2)[2]}",
        "jwt bad signature": f"Bearer {idp.token('mallory', key=stranger)}",
        "jwt wrong issuer": f"Bearer {idp.token('mallory', iss='https://evil.example/')}",
        "jwt wrong audience": f"Bearer {idp.token('mallory', aud='another-api')}",
        "jwt expired": f"Bearer {idp.token('mallory', exp=now - 3600, iat=now - 7200, nbf=now - 7200)}",
        "jwt not yet valid": f"Bearer {idp.token('mallory', nbf=now + 3600)}",
        "jwt unknown kid": f"Bearer {idp.token('mallory', kid='no-such-key')}",
        "jwt alg none": f"Bearer {unsigned}",
        "jwt no subject": f"Bearer {idp.token(sub=None)}",
        "jwt subject not an id": f"Bearer {idp.token('mallory.x.>  ' * 20)}",
    }


async def counts(secure: Any) -> dict[str, int]:
    db = secure.system.db
    return {c: await db[c].count_documents({}) for c in ("generations", "accounts", "api_keys", "ledger")}


async def test_every_route_refuses_every_bad_credential(secure):
    revoked = (
        await secure.system.api.post("/api/v1/keys", json={"name": "to revoke", "owner": "alice"})
    ).json()
    assert (await secure.system.api.delete(f"/api/v1/keys/{revoked['id']}")).status_code == 200
    expired = (
        await secure.system.api.post(
            "/api/v1/keys", json={"name": "short-lived", "owner": "alice", "expires_in_s": 1}
        )
    ).json()
    assert expired["expires_at"] is not None
    await asyncio.sleep(1.1)
    credentials = {
        **bad_credentials(secure),
        "revoked key": f"Bearer {revoked['token']}",
        "expired key": f"Bearer {expired['token']}",
    }
    before = await counts(secure)
    ops = await operations(secure.url)
    async with httpx.AsyncClient(base_url=secure.url, timeout=30) as client:
        for name, credential in credentials.items():
            headers = {"Authorization": credential} if credential is not None else {}
            for method, path in ops:
                body = {} if method in ("POST", "PATCH") else None
                resp = await client.request(method, path, headers=headers, json=body)
                assert resp.status_code == 401, (name, method, path, resp.status_code, resp.text)
                assert resp.json()["error"]["code"] == "unauthenticated"
                assert resp.headers["www-authenticate"] == "Bearer"
    assert await counts(secure) == before  # nothing was created, changed or booked
    print(f"\n{len(credentials)} bad credentials x {len(ops)} operations: all 401")


async def test_valid_keys_and_tokens_get_in(secure):
    async with secure.client("alice") as alice:
        assert (await alice.get("/api/v1/generations")).status_code == 200
    token = secure.idp.token("oidc-carol")
    async with httpx.AsyncClient(base_url=secure.url, headers={"Authorization": f"Bearer {token}"}) as carol:
        assert (await carol.get("/api/v1/generations")).status_code == 200
        assert (await carol.get("/api/v1/keys")).json()["items"] == []  # a user: sees only their own keys
    admin_token = secure.idp.token("oidc-root", role=["viewer", "admin"])
    async with httpx.AsyncClient(
        base_url=secure.url, headers={"Authorization": f"Bearer {admin_token}"}
    ) as root:
        owners = {k["owner"] for k in (await root.get("/api/v1/keys")).json()["items"]}
        assert {"alice", "bob"} <= owners  # an admin sees every key


async def test_health_probes_and_the_api_document_stay_public(secure):
    async with httpx.AsyncClient(base_url=secure.url) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        assert (await anonymous.get("/openapi.json")).status_code == 200
        assert (await anonymous.get("/api/v1/no-such-route")).status_code == 401  # nothing to probe


async def test_rotated_signing_keys_are_followed_by_kid(secure):
    idp = secure.idp
    old = idp.token("rotating-user")
    async with httpx.AsyncClient(base_url=secure.url) as client:
        assert (
            await client.get("/api/v1/generations", headers={"Authorization": f"Bearer {old}"})
        ).status_code == 200
        idp.rotate()  # the identity provider publishes a new key and drops the old one
        new = idp.token("rotating-user")
        await asyncio.sleep(0.3)  # past PIXSIM_OIDC_JWKS_REFRESH: an unknown kid may fetch the JWKS again
        assert (
            await client.get("/api/v1/generations", headers={"Authorization": f"Bearer {new}"})
        ).status_code == 200
        refused = await client.get("/api/v1/generations", headers={"Authorization": f"Bearer {old}"})
        assert refused.status_code == 401  # the old key left the JWKS
