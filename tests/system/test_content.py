"""GET /generations/{id}/content: results behind the account's credentials (Sora) reach the user."""

from __future__ import annotations

import httpx
import pytest
from conftest import PROVIDERS
from pixsim_provider_sdk import discover
from pixsim_provider_sdk.testing.fake_http import load_fake
from support import create, wait_archive, wait_for

pytestmark = pytest.mark.system


async def test_public_results_redirect_until_pixsim_has_its_own_copy(pipeline):
    created = await create(pipeline.api, {"prompt": "public result", "duration": 1})
    done = await wait_for(pipeline.api, created["id"])
    resp = await pipeline.api.get(f"/api/v1/generations/{created['id']}/content")
    if resp.status_code != 200:  # not archived yet (the archiver runs right after completion)
        assert resp.status_code == 307 and resp.headers["location"] == done["result"]["video_url"]
    await wait_archive(pipeline.api, created["id"])
    stored = await pipeline.api.get(f"/api/v1/generations/{created['id']}/content")
    provider = await pipeline.api.get(done["result"]["video_url"])
    assert stored.status_code == 200 and stored.content == provider.content


async def test_credentialed_results_are_fetched_with_the_account(pipeline, monkeypatch):
    fake = load_fake(PROVIDERS / "sora")(latency=0.3)
    monkeypatch.setenv("PIXSIM_SORA_BASE_URL", fake.start("127.0.0.1", 0))
    sora = discover(PROVIDERS, include_entry_points=False).get("sora")  # the instance the services share
    await sora.aclose()  # rebuild its client on the fake's URL
    try:
        account = await pipeline.api.post(
            "/api/v1/accounts", json={"provider_id": "sora", "raw_data": fake.valid_raw_data()}
        )
        assert account.status_code == 201, account.text
        created = await create(
            pipeline.api, {"prompt": "a fox on the moon"}, provider="sora", account_id=account.json()["id"]
        )
        done = await wait_for(pipeline.api, created["id"])
        assert done["status"] == "completed", done
        direct = await httpx.AsyncClient().get(done["result"]["video_url"])
        assert direct.status_code == 401  # the provider's URL needs the account's key
        resp = await pipeline.api.get(f"/api/v1/generations/{created['id']}/content")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("video/mp4")
        assert resp.content[4:8] == b"ftyp"
        not_done = await pipeline.api.get("/api/v1/generations/nope/content")
        assert not_done.status_code == 404
    finally:
        await sora.aclose()
        fake.stop()
