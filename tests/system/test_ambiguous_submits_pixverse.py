"""Ambiguity handled, not guessed (pixverse): Pixverse takes no client reference, so after a lost answer the
adapter finds the job in the account's personal list by the parameters it sent. A dispatcher SIGKILLed
after Pixverse accepted a video and before it recorded that, and a submit whose answer was lost after
acceptance (a timeout, a dropped connection): one video at Pixverse, the job completes, charged once."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from conftest import PROVIDERS, build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk.safe_fetch import ALLOW_HOSTS_ENV, host_port
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
def pixverse_fake(monkeypatch):
    fake = load_fake(PROVIDERS / "pixverse")(latency=1.0)
    monkeypatch.setenv("PIXSIM_PIXVERSE_BASE_URL", fake.start("127.0.0.1", 0))
    monkeypatch.setenv(ALLOW_HOSTS_ENV, host_port(fake.url), prepend=",")  # its media, for the archive
    yield fake
    fake.stop()


async def _account(api: Any, fake: Any) -> str:
    resp = await api.post(
        "/api/v1/accounts",
        json={"provider_id": "pixverse", "raw_data": fake.valid_raw_data(), "concurrency_limit": 4},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def _generate(api: Any, account: str, prompt: str) -> str:
    resp = await api.post(
        "/api/v1/generations",
        json={
            "provider_id": "pixverse",
            "operation_type": "text_to_video",
            "account_id": account,
            "params": {"prompt": prompt, "duration": 5},
        },
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def _videos(fake: Any, prompt: str) -> list[Any]:
    return [j for j in fake.jobs.values() if j.prompt == prompt]


async def test_a_dispatcher_killed_after_pixverse_accepted_continues_the_job(fresh_servers, pixverse_fake):
    settings = service_settings(fresh_servers, db="pixverse_lost", PIXSIM_DISPATCH_ACK_WAIT=3)
    env = {k: str(v) for k, v in settings.items()}
    procs: list[subprocess.Popen] = []
    prompt = "a paper boat, accepted, then the dispatcher died"
    try:
        apps = build_apps(settings, TracerProvider(), roles=("gateway", "poller", "billing"))
        async with serve(*apps) as served, api_client(served[0].url) as api:
            account = await _account(api, pixverse_fake)
            procs.append(doomed := await start_service("pixsim_dispatcher", {**env, **KILLED_AFTER_ACCEPT}))
            gid = await _generate(api, account, prompt)
            await killed_at_its_fault_point(doomed)
            assert len(_videos(pixverse_fake, prompt)) == 1  # Pixverse has it; we never recorded it
            procs.append(await start_service("pixsim_dispatcher", env))
            body = await wait_for(api, gid, timeout=60)
            assert body["status"] == "completed", body
            [video] = _videos(pixverse_fake, prompt)
            assert body["provider_job_id"] == str(video.id)
            await charged_once(fresh_servers.mongo_url, "pixverse_lost", gid)
            assert pixverse_fake.submit_count == 1  # asked, not submitted again
    finally:
        stop(procs)


@pytest.mark.parametrize("fault", ["accept_then_stall", "accept_then_drop"])
async def test_a_submit_whose_answer_was_lost_makes_one_pixverse_video(fresh_servers, pixverse_fake, fault):
    db = f"pixverse_{fault}"
    settings = service_settings(fresh_servers, db=db)
    apps = apps_with_an_impatient_dispatcher(settings, "pixverse")
    pixverse_fake.stall_s = 3.0  # the adapter gives up after 1 s, with the video already made
    prompt = f"a paper boat, answer lost: {fault}"
    async with serve(*apps) as served, api_client(served[0].url) as api:
        account = await _account(api, pixverse_fake)
        setattr(pixverse_fake, fault, 1)
        gid = await _generate(api, account, prompt)
        body = await wait_for(api, gid, timeout=60)
        assert getattr(pixverse_fake, fault) == 0  # the fault did happen
        assert body["status"] == "completed", body
        [video] = _videos(pixverse_fake, prompt)  # one video, not one per try
        assert body["provider_job_id"] == str(video.id)
        assert pixverse_fake.submit_count == 1
        await charged_once(fresh_servers.mongo_url, db, gid)
