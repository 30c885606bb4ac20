"""Ambiguity handled, not guessed (sim): a dispatcher SIGKILLed after the provider accepted a job and before
it recorded that, and a submit whose answer was lost after acceptance (a timeout, a dropped connection):
the provider is asked, the job continues as submitted, runs once at the provider and is charged once."""

from __future__ import annotations

import subprocess

import pytest
from conftest import build_apps, service_settings
from opentelemetry.sdk.trace import TracerProvider
from pixsim_runtime.inprocess import serve
from support import api_client, create, wait_for
from system.kit import (
    KILLED_AFTER_ACCEPT,
    apps_with_an_impatient_dispatcher,
    charged_once,
    killed_at_its_fault_point,
    start_service,
    stop,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]


async def test_a_dispatcher_killed_after_the_provider_accepted_continues_the_job(fresh_servers, sim_fake):
    settings = service_settings(fresh_servers, db="lost_submit", PIXSIM_DISPATCH_ACK_WAIT=3)
    env = {k: str(v) for k, v in settings.items()}
    procs: list[subprocess.Popen] = []
    try:
        apps = build_apps(settings, TracerProvider(), roles=("gateway", "poller", "billing"))
        async with serve(*apps) as served, api_client(served[0].url) as api:
            procs.append(doomed := await start_service("pixsim_dispatcher", {**env, **KILLED_AFTER_ACCEPT}))
            job = await create(
                api, {"prompt": "accepted, then the dispatcher died", "duration": 2, "latency": 1}
            )
            await killed_at_its_fault_point(doomed)
            assert len(sim_fake.jobs_with_reference(job["id"])) == 1  # the provider has it; we never said so
            procs.append(await start_service("pixsim_dispatcher", env))
            body = await wait_for(api, job["id"], timeout=60)
            assert body["status"] == "completed", body
            assert body["provider_job_id"] == sim_fake.jobs_with_reference(job["id"])[0].id
            assert len(sim_fake.jobs_with_reference(job["id"])) == 1
            await charged_once(fresh_servers.mongo_url, "lost_submit", job["id"])
    finally:
        stop(procs)


@pytest.mark.parametrize("fault", ["accept_then_stall", "accept_then_drop"])
async def test_an_answer_lost_after_acceptance_makes_one_provider_job(fresh_servers, sim_fake, fault):
    db = f"ambiguous_{fault}"
    settings = service_settings(fresh_servers, db=db)
    apps = apps_with_an_impatient_dispatcher(settings, "sim")
    sim_fake.stall_s = 3.0  # the adapter gives up after 1 s, with the job already created
    async with serve(*apps) as served, api_client(served[0].url) as api:
        setattr(sim_fake, fault, 1)
        job = await create(api, {"prompt": f"answer lost: {fault}", "duration": 1, "latency": 0.5})
        body = await wait_for(api, job["id"], timeout=60)
        assert getattr(sim_fake, fault) == 0  # the fault did happen
        assert body["status"] == "completed", body
        [remote] = sim_fake.jobs_with_reference(job["id"])  # one job at the provider, not one per try
        assert body["provider_job_id"] == remote.id
        await charged_once(fresh_servers.mongo_url, db, job["id"])
