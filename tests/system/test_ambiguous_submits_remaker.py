"""Ambiguity handled, not guessed (remaker): Remaker's web API takes no client reference and lists no jobs, so
after a lost answer nobody can tell whether it made the job. A dispatcher SIGKILLed after Remaker accepted a
job and before it recorded that, and a create-job whose answer was lost after acceptance (a timeout, a
dropped connection): the job is NOT submitted again (one job at Remaker) and ends `submit_outcome_unknown`,
never charged."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import time
import zlib
from typing import Any

import pytest
from conftest import PROVIDERS, build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk.testing.fake_http import load_fake
from pixsim_runtime.inprocess import serve
from support import api_client, ledger_for, wait_for
from system.kit import (
    KILLED_AFTER_ACCEPT,
    apps_with_an_impatient_dispatcher,
    killed_at_its_fault_point,
    start_service,
    stop,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]


def _png(width: int = 32, height: int = 24) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def remaker_fake(monkeypatch):
    fake = load_fake(PROVIDERS / "remaker")(latency=1.0)
    monkeypatch.setenv("PIXSIM_REMAKER_BASE_URL", fake.start("127.0.0.1", 0))
    yield fake
    fake.stop()


@pytest.fixture
def photo_url(sim_fake) -> str:
    """An input image on a host the dispatcher may fetch from (the sim fake serves its uploads)."""
    name = f"remaker-in-{time.monotonic_ns()}.png"
    sim_fake.uploads[name] = (_png(), "image/png")
    return f"{sim_fake.url}/v1/files/{name}"


async def _account(api: Any, fake: Any) -> str:
    resp = await api.post(
        "/api/v1/accounts",
        json={"provider_id": "remaker", "raw_data": fake.valid_raw_data(), "concurrency_limit": 1},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def _generate(api: Any, account: str, prompt: str, image_url: str) -> str:
    resp = await api.post(
        "/api/v1/generations",
        json={
            "provider_id": "remaker",
            "operation_type": "image_to_image",
            "account_id": account,
            "params": {"prompt": prompt, "image_url": image_url},
        },
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def _jobs(fake: Any, prompt: str) -> list[dict[str, Any]]:
    return [s for s in fake.submissions if s["fields"].get("prompt") == prompt]


#: Nobody can ever tell (Remaker cannot be asked), so the orphan sweep gives such a job up after 3 s, not 1 h.
GIVE_UP_SOON = {"PIXSIM_UNKNOWN_GIVE_UP": 3, "PIXSIM_ORPHAN_SWEEP_INTERVAL": 0.5}


async def _ends_outcome_unknown(api: Any, fake: Any, prompt: str, mongo_url: str, db: str, gid: str) -> None:
    """The job waits for the orphan sweep, then ends `submit_outcome_unknown`; Remaker got it once and no
    second time, nothing is charged."""
    body = await wait_for(api, gid, timeout=60)
    assert body["status"] == "failed" and body["error"]["code"] == "submit_outcome_unknown", body
    await asyncio.sleep(2)  # long enough for a (wrong) second submit to show
    assert len(_jobs(fake, prompt)) == 1 and len(fake.jobs) == 1  # submitted once, never again
    assert "charged" not in {e["kind"] for e in await ledger_for(mongo_url, db, gid)}


async def test_a_dispatcher_killed_after_remaker_accepted_does_not_submit_again(
    fresh_servers, remaker_fake, photo_url
):
    settings = service_settings(fresh_servers, db="remaker_lost", PIXSIM_DISPATCH_ACK_WAIT=3, **GIVE_UP_SOON)
    env = {k: str(v) for k, v in settings.items()}
    procs: list[subprocess.Popen] = []
    prompt = "autumn leaves, accepted, then the dispatcher died"
    try:
        apps = build_apps(settings, TracerProvider(), roles=("gateway", "poller", "billing"))
        async with serve(*apps) as served, api_client(served[0].url) as api:
            account = await _account(api, remaker_fake)
            procs.append(doomed := await start_service("pixsim_dispatcher", {**env, **KILLED_AFTER_ACCEPT}))
            gid = await _generate(api, account, prompt, photo_url)
            await killed_at_its_fault_point(doomed)
            assert len(_jobs(remaker_fake, prompt)) == 1  # Remaker has it; we never recorded it
            procs.append(await start_service("pixsim_dispatcher", env))
            await _ends_outcome_unknown(
                api, remaker_fake, prompt, fresh_servers.mongo_url, "remaker_lost", gid
            )
    finally:
        stop(procs)


@pytest.mark.parametrize("fault", ["accept_then_stall", "accept_then_drop"])
async def test_a_create_job_whose_answer_was_lost_is_not_submitted_again(
    fresh_servers, remaker_fake, photo_url, fault
):
    db = f"remaker_{fault}"
    settings = service_settings(fresh_servers, db=db, **GIVE_UP_SOON)
    apps = apps_with_an_impatient_dispatcher(settings, "remaker")
    remaker_fake.stall_s = 3.0  # the adapter gives up after 1 s, with the job already made
    prompt = f"autumn leaves, answer lost: {fault}"
    async with serve(*apps) as served, api_client(served[0].url) as api:
        account = await _account(api, remaker_fake)
        setattr(remaker_fake, fault, 1)
        gid = await _generate(api, account, prompt, photo_url)
        await _ends_outcome_unknown(api, remaker_fake, prompt, fresh_servers.mongo_url, db, gid)
    assert getattr(remaker_fake, fault) == 0  # the fault did happen
