"""An asset belongs to its uploader: another user can neither read it nor use it as a parameter."""

from __future__ import annotations

import sys

import pytest
from accounts.kit import PROVIDER
from conftest import PROVIDERS
from pixsim_provider_sdk.testing.fake_http import load_fake

pytestmark = pytest.mark.system

make_png = sys.modules[load_fake(PROVIDERS / "sim").__module__].make_png


async def test_another_users_asset_is_refused_and_answers_404(secure):
    async with secure.client("alice") as alice, secure.client("bob") as bob:
        resp = await alice.post(
            "/api/v1/assets", files={"file": ("a.png", make_png(8, 8, "alice"), "image/png")}
        )
        assert resp.status_code == 201, resp.text
        asset = resp.json()
        assert asset["owner"] == "alice"
        assert (await bob.get(f"/api/v1/assets/{asset['id']}")).status_code == 404
        attempt = await bob.post(
            "/api/v1/generations",
            json={
                "provider_id": PROVIDER,
                "operation_type": "image_to_video",
                "params": {"image_url": asset["url"], "prompt": "mine now", "duration": 1},
            },
        )
        assert attempt.status_code == 422, attempt.text
        assert attempt.json()["error"]["code"] == "asset_not_found"
        assert (await alice.get(f"/api/v1/assets/{asset['id']}")).status_code == 200
        assert (await secure.system.api.get(f"/api/v1/assets/{asset['id']}")).status_code == 200  # admin


async def test_uploads_need_a_credential(secure):
    import httpx

    async with httpx.AsyncClient(base_url=secure.url) as anonymous:
        resp = await anonymous.post(
            "/api/v1/assets", files={"file": ("a.png", make_png(8, 8, "x"), "image/png")}
        )
    assert resp.status_code == 401
