"""The two small API routes the console needs, as any client calls them: POST /api/v1/estimates, GET /api/v1/me."""

from __future__ import annotations

import pytest
from support import api_client

pytestmark = pytest.mark.system


async def test_estimates_give_the_providers_price_before_submitting(console_system):
    async with api_client(console_system.url, token=console_system.keys["alice"]) as alice:
        ask = {"provider_id": "sim", "operation_type": "text_to_video"}
        resp = await alice.post("/api/v1/estimates", json={**ask, "params": {"duration": 7}})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {**ask, "credits": {"sim": 7}}  # the prompt (required) may be missing
        assert (await alice.post("/api/v1/estimates", json={**ask, "params": {}})).json()["credits"] == {
            "sim": 5
        }
        bad = await alice.post("/api/v1/estimates", json={**ask, "params": {"duration": 99}})
        assert bad.status_code == 422 and "duration" in bad.json()["error"]["message"]
        unknown = await alice.post("/api/v1/estimates", json={**ask, "provider_id": "nope"})
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "provider_not_found"
        spec = (await alice.get("/openapi.json")).json()
        assert "/api/v1/estimates" in spec["paths"] and "/api/v1/me" in spec["paths"]
        assert not any(not p.startswith("/api/") and p not in ("/healthz", "/readyz") for p in spec["paths"])
    async with api_client(console_system.url, token="psk_0000000000000000_" + "x" * 43) as nobody:
        assert (await nobody.post("/api/v1/estimates", json=ask)).status_code == 401


async def test_me_names_the_caller(console_system):
    async with api_client(console_system.url, token=console_system.keys["alice"]) as alice:
        me = (await alice.get("/api/v1/me")).json()
    assert (
        me["user_id"] == "alice"
        and me["role"] == "user"
        and console_system.keys["alice"].startswith(f"psk_{me['key_id']}_")
    )
    assert (await console_system.api.get("/api/v1/me")).json()["role"] == "admin"
