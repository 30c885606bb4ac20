"""Ambiguity handled, not guessed (sim): a dispatcher SIGKILLed after the provider accepted a job and before
it recorded that, and a submit whose answer was lost after acceptance (a timeout, a dropped connection):
the provider is asked, the job continues as submitted, runs once at the provider and is charged once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from conftest import PROVIDERS, build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_provider_sdk import LoadedProvider, Registry, discover
from pixsim_runtime.inprocess import serve
from pixsim_runtime.local_servers import free_port
from support import api_client, create, wait_for, wait_ledger

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

_sim = discover(PROVIDERS, include_entry_points=False, only=["sim"])
SimProvider, SIM = type(_sim.get("sim")), _sim.manifest("sim")


class Impatient(SimProvider):  # type: ignore[misc, valid-type]
    http_timeout = 1.0


async def _start(module: str, env: dict[str, str], *, ready: bool = True) -> subprocess.Popen:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module],  # noqa: ASYNC220 - a real process, to SIGKILL
                            env={**os.environ, **env, "PIXSIM_HTTP_PORT": str(port)})
    if not ready:
        return proc
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"{module} exited during start-up"
            await asyncio.sleep(0.05)
    raise AssertionError(f"{module} not ready")


async def _charged_once(mongo_url: str, db: str, gid: str) -> None:
    entries = await wait_ledger(mongo_url, db, gid, {"reserved", "charged"})
    assert sorted(e["kind"] for e in entries) == ["charged", "reserved"], entries


async def test_a_dispatcher_killed_after_the_provider_accepted_continues_the_job(fresh_servers, sim_fake):
    settings = service_settings(fresh_servers, db="lost_submit", PIXSIM_DISPATCH_ACK_WAIT=3)
    env = {k: str(v) for k, v in settings.items()}
    procs: list[subprocess.Popen] = []
    try:
        apps = build_apps(settings, TracerProvider(), roles=("gateway", "poller", "billing"))
        async with serve(*apps) as served, api_client(served[0].url) as api:
            procs.append(doomed := await _start("pixsim_dispatcher",
                                                {**env, "PIXSIM_FAULT_POINT": "dispatcher.after_execute"}))
            job = await create(api, {"prompt": "accepted, then the dispatcher died", "duration": 2, "latency": 1})
            deadline = time.monotonic() + 60
            while doomed.poll() is None:
                assert time.monotonic() < deadline, "the dispatcher never reached its fault point"
                await asyncio.sleep(0.05)
            assert doomed.returncode == -signal.SIGKILL
            assert len(sim_fake.jobs_with_reference(job["id"])) == 1  # the provider has it; we never said so
            procs.append(await _start("pixsim_dispatcher", env))
            body = await wait_for(api, job["id"], timeout=60)
        assert body["status"] == "completed", body
        assert body["provider_job_id"] == sim_fake.jobs_with_reference(job["id"])[0].id
        assert len(sim_fake.jobs_with_reference(job["id"])) == 1
        await _charged_once(fresh_servers.mongo_url, "lost_submit", job["id"])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


@pytest.mark.parametrize("fault", ["accept_then_stall", "accept_then_drop"])
async def test_an_answer_lost_after_acceptance_makes_one_provider_job(fresh_servers, sim_fake, fault):
    from pixsim_dispatcher.app import DispatcherSettings
    from pixsim_dispatcher.app import create_app as dispatcher

    db = f"ambiguous_{fault}"
    settings = service_settings(fresh_servers, db=db)
    impatient = Impatient()
    impatient.attach_manifest(SIM)
    tp = TracerProvider()
    apps: list[Any] = build_apps(settings, tp, roles=("gateway", "poller", "billing"))
    apps.append(dispatcher(DispatcherSettings(**settings), tracer_provider=tp,
                           registry=Registry([LoadedProvider(SIM, impatient, "tests (impatient sim)")])))
    sim_fake.stall_s = 3.0  # the adapter gives up after 1 s, with the job already created
    async with serve(*apps) as served, api_client(served[0].url) as api:
        setattr(sim_fake, fault, 1)
        job = await create(api, {"prompt": f"answer lost: {fault}", "duration": 1, "latency": 0.5})
        body = await wait_for(api, job["id"], timeout=60)
    assert getattr(sim_fake, fault) == 0  # the fault did happen
    assert body["status"] == "completed", body
    [remote] = sim_fake.jobs_with_reference(job["id"])  # one job at the provider, not one per try
    assert body["provider_job_id"] == remote.id
    await _charged_once(fresh_servers.mongo_url, db, job["id"])
