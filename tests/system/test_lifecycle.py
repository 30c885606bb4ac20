"""A generation through the whole pipeline: gateway -> dispatcher -> sim provider -> poller -> billing."""

from __future__ import annotations

import httpx
import pytest
from support import create, sse_events, wait_for, wait_ledger

pytestmark = pytest.mark.system


async def _account(pipeline) -> str:
    """An account of our own, so this test's balance is not shared with other tests."""
    resp = await pipeline.api.post(
        "/api/v1/accounts",
        json={"provider_id": "sim", "raw_data": {"token": "tok-123"}, "email": "a@example.com"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def _balance(pipeline, account_id: str) -> dict:
    from support import mongo_db

    return await mongo_db(pipeline.servers.mongo_url, pipeline.db_name)["balances"].find_one(
        {"_id": f"{account_id}:sim"}
    )


async def test_generation_completes_with_progress_result_and_credits(pipeline):
    account = await _account(pipeline)
    # 4 s at the provider (the sim's `latency`, which its hook also gives as the expected duration): the
    # poller polls it for progress every 0.3 s until then, and on a loaded machine (the whole suite) 2 s
    # once passed without a progress poll the provider still answered `running` to
    created = await create(
        pipeline.api, {"prompt": "a fox in the snow", "duration": 3, "latency": 4}, account_id=account
    )
    assert created["status"] == "requested"
    # read your writes: found at once, before any projection ran
    assert (await pipeline.api.get(f"/api/v1/generations/{created['id']}")).status_code == 200

    events = await sse_events(pipeline.gateway_url, created["id"])
    kinds = [k for k, _ in events]
    assert kinds[0] == "generation.requested" and kinds[-1] == "generation.completed"
    assert "generation.submitted" in kinds
    progress = [e["progress"] for k, e in events if k == "generation.progressed"]
    assert progress and progress == sorted(progress) and 0 < progress[-1] <= 1

    done = await wait_for(pipeline.api, created["id"])
    assert done["status"] == "completed" and done["progress"] == 1.0
    assert done["account_id"] == account and done["provider_job_id"]
    video = await httpx.AsyncClient().get(done["result"]["video_url"])
    assert video.status_code == 200 and video.headers["content-type"].startswith("video/") and video.content

    entries = await wait_ledger(
        pipeline.servers.mongo_url, pipeline.db_name, created["id"], {"reserved", "charged"}
    )
    assert [(e["kind"], e["amount"]) for e in entries] == [("reserved", 3), ("charged", 3)]
    done = await wait_for(pipeline.api, created["id"])
    assert done["credits"]["reserved"] == {"sim": 3} and done["credits"]["charged"] == {"sim": 3}
    balance = await _balance(pipeline, account)
    assert (balance["reserved"], balance["spent"]) == (0, 3)
    assert sum(e["delta_spent"] for e in entries) == balance["spent"]


@pytest.mark.parametrize(
    ("outcome", "status", "code"), [("fail", "failed", None), ("filter", "filtered", "content_")]
)
async def test_failed_and_filtered_jobs_release_their_credits(pipeline, outcome, status, code):
    account = await _account(pipeline)
    created = await create(
        pipeline.api, {"prompt": "a storm", "duration": 2, "outcome": outcome}, account_id=account
    )
    done = await wait_for(pipeline.api, created["id"])
    assert done["status"] == status
    assert done["error"]["code"] and done["error"]["message"] is not None
    if code:
        assert done["error"]["code"].startswith(code)
    entries = await wait_ledger(
        pipeline.servers.mongo_url, pipeline.db_name, created["id"], {"reserved", "released"}
    )
    assert [(e["kind"], e["amount"]) for e in entries] == [("reserved", 2), ("released", 2)]
    balance = await _balance(pipeline, account)
    assert (balance["reserved"], balance["spent"]) == (0, 0)


async def test_cancel_stops_a_running_job_and_releases_credits(pipeline):
    account = await _account(pipeline)
    created = await create(pipeline.api, {"prompt": "slow", "duration": 4, "latency": 30}, account_id=account)
    await wait_for(pipeline.api, created["id"], {"submitted", "processing"})
    resp = await pipeline.api.post(f"/api/v1/generations/{created['id']}/cancel")
    assert resp.status_code == 202
    done = await wait_for(pipeline.api, created["id"])
    assert done["status"] == "cancelled"
    entries = await wait_ledger(
        pipeline.servers.mongo_url, pipeline.db_name, created["id"], {"reserved", "released"}
    )
    assert sum(e["delta_reserved"] for e in entries) == 0
    again = await pipeline.api.post(f"/api/v1/generations/{created['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_finished"
    job_id = done["provider_job_id"]
    assert any(r[0] == "POST" and r[1].endswith(f"/v1/jobs/{job_id}/cancel") for r in pipeline.fake.requests)


async def test_system_account_is_used_when_the_provider_needs_no_credentials(pipeline):
    created = await create(pipeline.api, {"prompt": "no account needed", "duration": 1})
    done = await wait_for(pipeline.api, created["id"])
    assert done["status"] == "completed" and done["account_id"] == "system-sim"
