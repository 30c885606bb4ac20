"""Ambiguity handled, not guessed (sora): OpenAI's Videos API has no idempotency key, so after a lost answer
the adapter finds the video among the account's recent ones by its parameters. A dispatcher SIGKILLed
after Sora accepted a video and before it recorded that, and a create that timed out after acceptance:
one video at the provider, the job completes, charged once."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from conftest import PROVIDERS, build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_runtime.inprocess import serve
from support import api_client, wait_for
from system.kit import (
    KILLED_AFTER_ACCEPT,
    apps_with_an_impatient_dispatcher,
    charged_once,
    killed_at_its_fault_point,
    start_service,
    stop,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]


@pytest.fixture
def sora_fake(monkeypatch):
    fake = load_fake(PROVIDERS / "sora")(latency=1.0)
    monkeypatch.setenv("PIXSIM_SORA_BASE_URL", fake.start("127.0.0.1", 0))
    yield fake
    fake.stop()


async def _account(api: Any, fake: Any) -> str:
    resp = await api.post(
        "/api/v1/accounts",
        json={"provider_id": "sora", "raw_data": fake.valid_raw_data(), "concurrency_limit": 4},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def _generate(api: Any, account: str, prompt: str) -> str:
    resp = await api.post(
        "/api/v1/generations",
        json={
            "provider_id": "sora",
            "operation_type": "text_to_video",
            "account_id": account,
            "params": {"prompt": prompt},
        },
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def _videos(fake: Any, prompt: str) -> list[Any]:
    return [v for v in fake.videos.values() if v.prompt == prompt]


async def test_a_dispatcher_killed_after_sora_accepted_continues_the_job(fresh_servers, sora_fake):
    settings = service_settings(fresh_servers, db="sora_lost", PIXSIM_DISPATCH_ACK_WAIT=3)
    env = {
        **{k: str(v) for k, v in settings.items()},
        "PIXSIM_SORA_BASE_URL": os.environ["PIXSIM_SORA_BASE_URL"],
    }
    procs: list[subprocess.Popen] = []
    prompt = "a lighthouse, accepted, then the dispatcher died"
    try:
        apps = build_apps(settings, TracerProvider(), roles=("gateway", "poller", "billing"))
        async with serve(*apps) as served, api_client(served[0].url) as api:
            account = await _account(api, sora_fake)
            procs.append(doomed := await start_service("pixsim_dispatcher", {**env, **KILLED_AFTER_ACCEPT}))
            gid = await _generate(api, account, prompt)
            await killed_at_its_fault_point(doomed)
            assert len(_videos(sora_fake, prompt)) == 1
            procs.append(await start_service("pixsim_dispatcher", env))
            body = await wait_for(api, gid, timeout=60)
            assert body["status"] == "completed", body
            [video] = _videos(sora_fake, prompt)
            assert body["provider_job_id"] == video.id
            await charged_once(fresh_servers.mongo_url, "sora_lost", gid)
    finally:
        stop(procs)


@pytest.mark.parametrize("fault", ["accept_then_stall", "accept_then_drop"])
async def test_a_create_whose_answer_was_lost_makes_one_sora_video(fresh_servers, sora_fake, fault):
    db = f"sora_{fault}"
    settings = service_settings(fresh_servers, db=db)
    apps = apps_with_an_impatient_dispatcher(settings, "sora")
    sora_fake.stall_s = 3.0
    prompt = f"a lighthouse, answer lost: {fault}"
    async with serve(*apps) as served, api_client(served[0].url) as api:
        account = await _account(api, sora_fake)
        setattr(sora_fake, fault, 1)
        gid = await _generate(api, account, prompt)
        body = await wait_for(api, gid, timeout=60)
        assert getattr(sora_fake, fault) == 0
        assert body["status"] == "completed", body
        [video] = _videos(sora_fake, prompt)  # one video, not one per try
        assert body["provider_job_id"] == video.id
        await charged_once(fresh_servers.mongo_url, db, gid)
